using PatroniYarp.IntegrationTests.Infrastructure;
using PatroniYarp.Testing;

namespace PatroniYarp.IntegrationTests.Configuration;

/// <summary>Editing patroni.yaml while PatroniYarp runs, and starting it on a bad file.</summary>
[Collection(RealClusterCollection.Name)]
public sealed class ConfigurationReloadTests
{
    [Fact]
    public async Task Reload_InvalidEdit_KeepsRunningConfigAndLogsError()
    {
        var admin = FreePort.Next();
        var yaml = TestYaml.Config(admin, TestYaml.Port("master", FreePort.Next(), "leader"));
        await using var proxy = await PatroniYarpProcess.StartAsync(yaml, admin);

        await proxy.WriteConfigAsync(yaml.Replace("roles: [leader]", "roles: [lead]"));

        await proxy.WaitForOutputAsync(l => l.Contains("roles") && l.Contains("lead"), "an error naming the bad role");
        var ports = (await proxy.GetJsonAsync("/clusters")).GetProperty("clusters").GetProperty("demo").GetProperty("ports");
        Assert.Equal("leader", ports.GetProperty("master").GetProperty("roles")[0].GetString());
        Assert.False(proxy.HasExited);
    }

    [Fact]
    public async Task Reload_ValidEditAddingPort_AppearsInClusters()
    {
        var admin = FreePort.Next();
        var master = TestYaml.Port("master", FreePort.Next(), "leader");
        await using var proxy = await PatroniYarpProcess.StartAsync(TestYaml.Config(admin, master), admin);

        await proxy.WriteConfigAsync(TestYaml.Config(admin, master + TestYaml.Port("replicas", FreePort.Next(), "sync, async")));

        await Eventually.UntilAsync(async () =>
            (await proxy.GetJsonAsync("/clusters")).GetProperty("clusters").GetProperty("demo").GetProperty("ports").TryGetProperty("replicas", out _),
            TimeSpan.FromSeconds(20), "the added port in /clusters");
    }

    [Fact]
    public async Task Start_InvalidConfig_ExitsNonZeroNamingFileAndKey()
    {
        var (exitCode, output) = await PatroniYarpProcess.RunToExitAsync(
            TestYaml.Config(FreePort.Next(), TestYaml.Port("master", FreePort.Next(), "lead")));

        Assert.NotEqual(0, exitCode);
        Assert.Contains("patroni.yaml", output);
        Assert.Contains("roles", output);
    }
}
