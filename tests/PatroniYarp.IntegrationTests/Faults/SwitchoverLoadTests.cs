using System.Diagnostics;
using Npgsql;
using PatroniYarp.IntegrationTests.Infrastructure;
using PatroniYarp.Testing;
using Xunit.Abstractions;

namespace PatroniYarp.IntegrationTests.Faults;

/// <summary>
/// Switchover after switchover while pgbench runs through the leader and replicas ports and a write loop checks where
/// writes land: the proxy stays up, no write is taken by a replica or lost, replica-port sessions to members that stay
/// replicas survive every switchover, and sessions, open files and memory come back to their baseline.
/// </summary>
[Collection(RealClusterCollection.Name)]
public sealed class SwitchoverLoadTests(RealClusterFixture fixture, ITestOutputHelper output) : IAsyncLifetime
{
    /// <summary>The issue's 20 by default; PATRONIYARP_SWITCHOVERS=N for a shorter or longer run.</summary>
    private static readonly int Switchovers =
        int.TryParse(Environment.GetEnvironmentVariable("PATRONIYARP_SWITCHOVERS"), out var n) && n > 0 ? n : 20;

    private readonly PatroniClusterScript _cluster = fixture.Cluster;
    private readonly int _masterPort = FreePort.Next();
    private readonly int _replicasPort = FreePort.Next();
    private PatroniYarpProcess _proxy = null!;

    public async Task InitializeAsync()
    {
        var leader = await _cluster.LeaderAsync();
        var admin = FreePort.Next();
        _proxy = await PatroniYarpProcess.StartAsync(TestYaml.Config(admin,
            TestYaml.Port("master", _masterPort, "leader") + TestYaml.Port("replicas", _replicasPort, "sync, async")), admin);
        await ProxyState.WaitForDestinationsAsync(_proxy, "master", [leader]);
        await ProxyState.WaitForDestinationsAsync(_proxy, "replicas", PatroniClusterScript.Members.Where(m => m != leader));
    }

    public async Task DisposeAsync()
    {
        await _proxy.DisposeAsync();
        await _cluster.UpAsync();
    }

    [Fact]
    public async Task Switchover_RepeatedUnderPgbenchLoad_NoWriteOnReplicaOrLost_StayingReplicaSessionsSurvive_ResourcesReturnToBaseline()
    {
        await RunPgbenchAsync(_masterPort, "-i", "-s", "1", "-q");
        // Warm-up: both ports forward, pgbench has run once; then the baseline.
        await RunPgbenchAsync(_masterPort, "-n", "-C", "-c", "2", "-t", "20");
        await RunPgbenchAsync(_replicasPort, "-n", "-C", "-S", "-c", "2", "-t", "20");
        await WaitForNoSessionsAsync();
        var baselineFiles = ProcessResources.OpenFiles(_proxy.Pid);
        var baselineRss = ProcessResources.ResidentBytes(_proxy.Pid);

        using var stopLoad = new CancellationTokenSource();
        var writeLoad = LoopPgbenchAsync(_masterPort, stopLoad.Token, "-n", "-C", "-c", "2", "-R", "40", "-T", "5");
        var readLoad = LoopPgbenchAsync(_replicasPort, stopLoad.Token, "-n", "-C", "-S", "-c", "2", "-R", "40", "-T", "5");
        var writes = await WriteLoop.StartAsync(_masterPort, PatroniClusterScript.PortOf(await _cluster.LeaderAsync()), "fault_switchover_writes");
        var watch = Stopwatch.StartNew();
        string leader;
        try
        {
            for (var i = 0; i < Switchovers; i++)
            {
                leader = await _cluster.LeaderAsync();
                var replicas = PatroniClusterScript.Members.Where(m => m != leader).Order().ToArray();
                var candidate = replicas[i % 2];
                var stays = replicas[(i + 1) % 2];
                // The previous switchover's demoted leader rejoins the replicas port once it streams again.
                await ProxyState.WaitForDestinationsAsync(_proxy, "replicas", replicas);
                await using var toStaying = await OpenOnAsync(stays);

                Assert.Equal(candidate, await _cluster.SwitchoverAsync(candidate));

                Assert.False(_proxy.HasExited, $"the proxy exited during switchover {i + 1}");
                Assert.True(await Pg.AliveAsync(toStaying), $"switchover {i + 1} ({leader} -> {candidate}) closed the session to {stays}");
                Assert.Equal(new Landing(PatroniClusterScript.PortOf(stays), true), await Pg.WhereAsync(toStaying));
                await ProxyState.WaitForDestinationsAsync(_proxy, "master", [candidate]);
                await writes.WaitForMoreAsync(1, TimeSpan.FromSeconds(30));
            }
        }
        finally
        {
            stopLoad.Cancel();
            await writes.StopAsync();
        }
        var (writeRuns, writeFailures, writeError) = await writeLoad;
        var (readRuns, readFailures, readError) = await readLoad;
        leader = await _cluster.LeaderAsync();

        Assert.All(writes.Acknowledged, w => Assert.False(w.InRecovery, $"write {w.Id} was taken by a replica on {w.ServerPort}"));
        Assert.Empty(await writes.MissingOnAsync(PatroniClusterScript.PortOf(leader)));

        await WaitForNoSessionsAsync();
        // One pooled keep-alive connection per Patroni host may come or go.
        await Eventually.UntilAsync(() => Task.FromResult(ProcessResources.OpenFiles(_proxy.Pid) <= baselineFiles + PatroniClusterScript.Members.Count),
            TimeSpan.FromSeconds(30), $"open files to return to the baseline {baselineFiles}");
        var rss = ProcessResources.ResidentBytes(_proxy.Pid);
        output.WriteLine($"{Switchovers} switchovers in {watch.Elapsed.TotalSeconds:0} s; {writes.Acknowledged.Count} writes acknowledged, " +
            $"{writes.Failures} refused; pgbench runs leader {writeRuns} ({writeFailures} aborted), replicas {readRuns} ({readFailures} aborted); " +
            $"open files {baselineFiles} -> {ProcessResources.OpenFiles(_proxy.Pid)}; RSS {baselineRss >> 20} MiB -> {rss >> 20} MiB\n" +
            $"last pgbench errors: leader: {writeError}\nreplicas: {readError}");
        Assert.True(rss < baselineRss * 2 + (64L << 20), $"RSS grew from {baselineRss >> 20} MiB to {rss >> 20} MiB");
    }

    /// <summary>Opens replicas-port sessions until one lands on <paramref name="member"/> (least connections alternates); closes the others.</summary>
    private async Task<NpgsqlConnection> OpenOnAsync(string member)
    {
        var others = new List<NpgsqlConnection>();
        try
        {
            for (var i = 0; i < 6; i++)
            {
                var session = await Pg.OpenAsync(_replicasPort);
                if ((await Pg.WhereAsync(session)).ServerPort == PatroniClusterScript.PortOf(member))
                {
                    return session;
                }
                others.Add(session);
            }
            throw new InvalidOperationException($"no replicas-port session landed on {member}");
        }
        finally
        {
            foreach (var other in others)
            {
                await other.DisposeAsync();
            }
        }
    }

    private Task WaitForNoSessionsAsync() =>
        Eventually.UntilAsync(async () => (await _proxy.GetJsonAsync("/connections")).GetProperty("count").GetInt32() == 0,
            TimeSpan.FromSeconds(30), "no open sessions through the proxy");

    /// <summary>pgbench runs back to back until cancelled; a switchover aborts a run's clients, so a run may fail. Returns (runs, failed runs).</summary>
    private static async Task<(int Runs, int Failed, string LastError)> LoopPgbenchAsync(int port, CancellationToken cancellationToken, params string[] args)
    {
        var (runs, failed, lastError) = (0, 0, "");
        while (!cancellationToken.IsCancellationRequested)
        {
            runs++;
            var (exitCode, error) = await RunPgbenchAsync(port, args, cancellationToken);
            if (exitCode != 0)
            {
                // While no member holds the port's role the proxy refuses at once; do not spin.
                failed++;
                lastError = error;
                await Task.Delay(500, CancellationToken.None);
            }
        }
        return (runs, failed, lastError);
    }

    private static async Task RunPgbenchAsync(int port, params string[] args)
    {
        var (exitCode, error) = await RunPgbenchAsync(port, args, CancellationToken.None);
        Assert.True(exitCode == 0, $"pgbench {string.Join(' ', args)} through port {port} exited with {exitCode}: {error}");
    }

    private static async Task<(int ExitCode, string Error)> RunPgbenchAsync(int port, string[] args, CancellationToken cancellationToken)
    {
        var startInfo = new ProcessStartInfo("pgbench") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { "-h", "127.0.0.1", "-p", port.ToString(), "-U", "postgres" }.Concat(args).Append("postgres"))
        {
            startInfo.ArgumentList.Add(arg);
        }
        startInfo.Environment["PGCONNECT_TIMEOUT"] = "5";
        using var process = Process.Start(startInfo)!;
        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
        try
        {
            await process.WaitForExitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            // Runs last at most -T seconds: let this one finish rather than kill it mid-transaction.
            await process.WaitForExitAsync(CancellationToken.None);
        }
        await stdout;
        return (process.ExitCode, await stderr);
    }
}
