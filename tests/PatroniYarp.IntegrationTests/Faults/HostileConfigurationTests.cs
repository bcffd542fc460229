using PatroniYarp.IntegrationTests.Infrastructure;
using PatroniYarp.Testing;

namespace PatroniYarp.IntegrationTests.Faults;

/// <summary>
/// Broken YAML as an operator might write it, through the real process: start-up refuses and names the key or place,
/// unknown keys only warn, a broken reload keeps the running configuration, and --check-config never prints the token.
/// </summary>
public sealed class HostileConfigurationTests
{
    private const string Hosts = "[\"http://127.0.0.1:1\"]";

    public static TheoryData<string, string> BrokenFiles() => new()
    {
        { "clusters: [unclosed\n", "patroni.yaml: line " },
        { "clusters:\n  main:\n    hosts: " + Hosts + "\n\tports: {}\n", "patroni.yaml: line " },
        { "cluster_update_interval: soon\nclusters:\n  main:\n    hosts: " + Hosts + "\n    ports: {m: {listen: \"127.0.0.1:6432\", roles: [leader]}}\n", "cluster_update_interval" },
        { "clusters:\n  main:\n    hosts: " + Hosts + "\n    ports: {m: {listen: \"127.0.0.1:6432\", roles: [leader], host_port: [1, 2]}}\n", "clusters.main.ports.m.host_port" },
        { "clusters:\n  main:\n    hosts: " + Hosts + "\n    ports: {m: {listen: \"127.0.0.1:99999\", roles: [leader]}}\n", "clusters.main.ports.m.listen" },
        { "clusters:\n  main:\n    hosts: " + Hosts + "\n    ports: {m: {listen: \"127.0.0.1:6432\", roles: [writer]}}\n", "clusters.main.ports.m.roles" },
        { "", "clusters: no clusters configured" },
        { "- just\n- a list\n", "the top level must be a mapping" },
    };

    [Theory]
    [MemberData(nameof(BrokenFiles))]
    public async Task Start_BrokenYaml_ExitsOneNamingTheKeyOrPlace(string yaml, string named)
    {
        var (exitCode, output) = await PatroniYarpProcess.RunToExitAsync(yaml);

        Assert.Equal(1, exitCode);
        Assert.Contains("PatroniYarp: invalid configuration:", output);
        Assert.Contains(named, output);
    }

    [Fact]
    public async Task Start_UnknownKey_WarnsNamingItAndStarts()
    {
        var admin = FreePort.Next();
        await using var proxy = await PatroniYarpProcess.StartAsync(Valid(admin) + "colour: blue\n", admin);

        await proxy.WaitForOutputAsync(line => line.Contains("colour: unknown key, ignored"), "a warning naming the unknown key");
    }

    [Fact]
    public async Task Reload_BrokenYaml_KeepsTheRunningConfigurationAndSaysWhy()
    {
        var admin = FreePort.Next();
        await using var proxy = await PatroniYarpProcess.StartAsync(Valid(admin), admin);

        await proxy.WriteConfigAsync("clusters: [unclosed\n");

        await proxy.WaitForOutputAsync(line => line.Contains("keeping the running one"), "the reload to be rejected");
        var clusters = await proxy.GetJsonAsync("/clusters");
        Assert.True(clusters.GetProperty("clusters").TryGetProperty("main", out _));
        Assert.False(proxy.HasExited);
    }

    [Fact]
    public async Task CheckConfig_WithAdminToken_NeverPrintsTheToken()
    {
        var (exitCode, output) = await PatroniYarpProcess.RunToExitAsync(Valid(FreePort.Next()) + "admin_token: \"hunter2-very-secret\"\n", "--check-config");

        Assert.Equal(0, exitCode);
        Assert.DoesNotContain("hunter2-very-secret", output);
        Assert.Contains("\"admin_token\": \"(set)\"", output);
    }

    private static string Valid(int admin) => $"""
        listen_address: "127.0.0.1:{admin}"
        clusters:
          main:
            hosts: {Hosts}
            ports:
              m: {"{"}listen: "127.0.0.1:{FreePort.Next()}", roles: [leader]{"}"}

        """;
}
