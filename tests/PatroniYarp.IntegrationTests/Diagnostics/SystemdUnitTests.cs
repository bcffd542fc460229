using System.Diagnostics;
using PatroniYarp.Configuration;
using PatroniYarp.IntegrationTests.Infrastructure;
using PatroniYarp.Testing;

namespace PatroniYarp.IntegrationTests.Diagnostics;

/// <summary>
/// deploy/systemd/patroniyarp.service without systemd (not PID 1 here): its ExecStart runs from its WorkingDirectory
/// under its LimitNOFILE, with the build output standing in for /opt/patroniyarp, and its ExecReload is run as written.
/// </summary>
[Collection(RealClusterCollection.Name)]
public sealed class SystemdUnitTests(RealClusterFixture fixture)
{
    private const string UnitAppDirectory = "/opt/patroniyarp";
    private const string UnitConfigPath = "/etc/patroniyarp/patroni.yaml";

    private readonly string _unitPath = Path.Combine(fixture.Cluster.RepoRoot, "deploy", "systemd", "patroniyarp.service");

    [Fact]
    public async Task UnitFile_ExecStartThenExecReload_RunsUnderItsLimitAndReloads()
    {
        var unit = File.ReadAllLines(_unitPath);
        var app = AppContext.BaseDirectory.TrimEnd('/');
        var directory = Directory.CreateTempSubdirectory("patroniyarp-systemd-").FullName;
        try
        {
            var config = Path.Combine(directory, "patroni.yaml");
            string[] execStart = [.. Setting(unit, "ExecStart").Split(' ').Select(arg => arg.Replace(UnitAppDirectory, app).Replace(UnitConfigPath, config))];
            Assert.Equal(["/usr/bin/dotnet", Path.Combine(app, "PatroniYarp.dll"), config], execStart);
            Assert.Equal(app, Setting(unit, "WorkingDirectory").Replace(UnitAppDirectory, app));
            // systemd raises the hard limit; here nothing may (20 000 on this machine), so at most that.
            var limit = Math.Min(int.Parse(Setting(unit, "LimitNOFILE")), HardOpenFilesLimit());
            // systemd kills what is left when TimeoutStopSec runs out: sessions still draining would be cut.
            Assert.True(int.Parse(Setting(unit, "TimeoutStopSec")) > new ProxyOptions().DrainTimeout, "TimeoutStopSec is not above the default drain_timeout");

            var admin = FreePort.Next();
            var master = TestYaml.Port("master", FreePort.Next(), "leader");
            await File.WriteAllTextAsync(config, TestYaml.Config(admin, master));
            await using var proxy = await PatroniYarpProcess.StartInAsync(app, config, admin, limit);
            await proxy.WaitForOutputAsync(line => line.Contains($"Open-files limit {limit}:", StringComparison.Ordinal), $"the start-up log to report the unit's limit ({limit})");

            await File.WriteAllTextAsync(config, TestYaml.Config(admin, master + TestYaml.Port("replicas", FreePort.Next(), "sync, async")));
            var reload = Setting(unit, "ExecReload").Replace("$MAINPID", proxy.Pid.ToString()).Split(' ');
            Assert.Equal(0, await RunAsync(reload[0], reload[1..]));

            await proxy.WaitForOutputAsync(line => line.Contains("SIGHUP received", StringComparison.Ordinal), "ExecReload's SIGHUP to be received");
            await ProxyState.WaitForPortAsync(proxy, "replicas", "the port added before ExecReload in /clusters");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>The value of the one <c>Key=value</c> line for <paramref name="key"/>.</summary>
    private static string Setting(string[] unit, string key) =>
        Assert.Single(unit, line => line.StartsWith(key + "=", StringComparison.Ordinal))[(key.Length + 1)..];

    /// <summary>This process's hard open-files limit, from /proc.</summary>
    private static int HardOpenFilesLimit() =>
        int.Parse(File.ReadLines("/proc/self/limits").Single(line => line.StartsWith("Max open files", StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[4]);

    private static async Task<int> RunAsync(string file, string[] args)
    {
        using var process = Process.Start(file, args);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await process.WaitForExitAsync(timeout.Token);
        return process.ExitCode;
    }
}
