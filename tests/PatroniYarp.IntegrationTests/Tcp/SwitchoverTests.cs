using System.Diagnostics;
using Npgsql;
using PatroniYarp.IntegrationTests.Infrastructure;
using PatroniYarp.Testing;
using Xunit.Abstractions;

namespace PatroniYarp.IntegrationTests.Tcp;

/// <summary>
/// The zero-error switchover: with the default configuration, a client that opens a new plaintext connection and runs
/// one INSERT through the leader port every 50 ms sees no failure across <c>patronictl switchover</c>. Beside it, in
/// the same run and reported only: a libpq-style client that knows every node (Npgsql multi-host, read-write) and the
/// same loop over TLS through PatroniYarp (TLS is end to end, so the proxy cannot replay a startup the old leader
/// rejects inside it).
/// An INSERT already running on the old leader when its fast shutdown starts is terminated there (57P01): no proxy can
/// hide that without guessing whether it committed, and a direct connection sees the same. Such in-flight terminations
/// are reported, not counted as failed attempts; every other failure is.
/// With the default configuration the leader port keeps a spare connection (preconnect: 1) once clients come, so the
/// loop's sessions start on spares opened ahead of them, which must never carry a write to the demoted leader. A second
/// leader port with <c>preconnect: 0</c> runs the same loop and is held to the same.
/// </summary>
[Collection(RealClusterCollection.Name)]
public sealed class SwitchoverTests(RealClusterFixture fixture, ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(50);

    private readonly PatroniClusterScript _cluster = fixture.Cluster;
    private readonly int _masterPort = FreePort.Next();
    private readonly int _noPreconnectPort = FreePort.Next();
    private readonly string _table = $"switchover_{Guid.NewGuid():N}";
    private PatroniYarpProcess _proxy = null!;

    public async Task InitializeAsync()
    {
        var admin = FreePort.Next();
        // Nothing but the listeners set: cluster_update_interval 3, leader_wait_timeout 5 and the rest as shipped.
        _proxy = await PatroniYarpProcess.StartAsync($"""
            listen_address: "127.0.0.1:{admin}"
            clusters:
              demo:
                hosts: {TestYaml.Hosts()}
                ports:
                  master:
                    listen: "127.0.0.1:{_masterPort}"
                    roles: [leader]
                  master_no_preconnect:
                    listen: "127.0.0.1:{_noPreconnectPort}"
                    roles: [leader]
                    preconnect: 0
            """, admin);
        await ProxyState.WaitForDestinationsAsync(_proxy, "master", [await _cluster.LeaderAsync()]);
        await ProxyState.WaitForDestinationsAsync(_proxy, "master_no_preconnect", [await _cluster.LeaderAsync()]);
        await using (var connection = await Pg.OpenAsync(_masterPort))
        {
            await using var create = new NpgsqlCommand($"create table {_table} (client text, n int, primary key (client, n))", connection);
            await create.ExecuteNonQueryAsync();
        }
        // The port's first client has come: a spare follows it.
        await ProxyState.WaitForSpareAsync(_proxy, "master", await _cluster.LeaderAsync());
    }

    public async Task DisposeAsync()
    {
        try
        {
            var leader = await _cluster.LeaderAsync();
            await _cluster.PsqlAsync(leader, $"drop table if exists {_table}");
        }
        finally
        {
            await _proxy.DisposeAsync();
        }
    }

    [Fact]
    public async Task Switchover_NewConnectionInsertEvery50ms_NoFailedAttempt_EveryRowOnTheNewLeader()
    {
        var oldLeader = await _cluster.LeaderAsync();
        // Plaintext: PatroniYarp replays a startup the old leader turns away (57P03 while it shuts down) on the new
        // leader. Npgsql's default (SSL Mode=Prefer) would negotiate TLS, which the proxy passes through unopened.
        var proxied = new InsertLoop("patroniyarp", Pg.ConnectionString(_masterPort, "SSL Mode=Disable"), _table);
        var allNodes = new InsertLoop("libpq-all-nodes",
            $"Host={string.Join(',', PatroniClusterScript.Members.Select(m => $"127.0.0.1:{PatroniClusterScript.PortOf(m)}"))};" +
            "Target Session Attributes=read-write;Username=postgres;Database=postgres;Pooling=false;Timeout=10;" +
            "Command Timeout=10;Host Recheck Seconds=0", _table);
        var tls = new InsertLoop("patroniyarp-tls",
            Pg.ConnectionString(_masterPort, "SSL Mode=Require;Trust Server Certificate=true"), _table);
        var withoutSpares = new InsertLoop("patroniyarp-no-preconnect", Pg.ConnectionString(_noPreconnectPort, "SSL Mode=Disable"), _table);
        using var stop = new CancellationTokenSource();
        var all = new[] { proxied, allNodes, tls, withoutSpares };
        var loops = all.Select(l => l.RunAsync(stop.Token)).ToArray();
        try
        {
            // Every loop writes before the switchover starts.
            await Eventually.UntilAsync(() => Task.FromResult(all.All(l => l.Succeeded >= 5)),
                TimeSpan.FromSeconds(30), "every loop to insert");

            var newLeader = await _cluster.SwitchoverAsync();
            Assert.NotEqual(oldLeader, newLeader);

            // Keep writing for a while after the script returns (it waits until the old leader is a replica again).
            var after = proxied.Succeeded + 20;
            await Eventually.UntilAsync(() => Task.FromResult(proxied.Succeeded >= after), TimeSpan.FromSeconds(30),
                "20 more inserts through the proxy after the switchover");
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(loops);
        }

        foreach (var loop in all)
        {
            output.WriteLine($"{loop.Name}: {loop.Succeeded} inserts, {loop.Failed} failed, {loop.TerminatedInFlight.Count} " +
                $"terminated in flight, longest gap between two successful inserts {loop.LongestGap.TotalMilliseconds:0} ms");
            foreach (var failure in loop.Failures.Take(5).Concat(loop.TerminatedInFlight))
            {
                output.WriteLine($"  {failure}");
            }
        }
        foreach (var line in _proxy.Output.Where(l => l.Contains("leader changed", StringComparison.Ordinal)
            || l.Contains("confirmed", StringComparison.Ordinal) || l.Contains("turned a session away", StringComparison.Ordinal)
            || l.Contains("connect to member", StringComparison.Ordinal) || l.Contains("leader_wait_timeout", StringComparison.Ordinal)))
        {
            output.WriteLine($"proxy: {line}");
        }
        if (allNodes.LongestGap > TimeSpan.Zero)
        {
            output.WriteLine($"gap ratio patroniyarp / libpq-all-nodes: {proxied.LongestGap / allNodes.LongestGap:0.00}");
        }

        // The demoted leader keeps no spare: nothing of this proxy stays connected to it (the loops have stopped).
        await Eventually.UntilAsync(() => Task.FromResult(ProcessResources.ConnectionsTo(_proxy.Pid, PatroniClusterScript.PortOf(oldLeader)) == 0),
            TimeSpan.FromSeconds(10), "no connection from the proxy to the old leader");
        var leader = await _cluster.LeaderAsync();
        foreach (var loop in new[] { proxied, withoutSpares })
        {
            Assert.True(loop.Failed == 0, $"{loop.Failed} failed attempts through {loop.Name}: {string.Join("; ", loop.Failures.Take(5))}");
            // No write lost and none landed on a replica: every acknowledged row is on the leader now.
            var onLeader = (await _cluster.PsqlAsync(leader, $"select n from {_table} where client = '{loop.Name}'"))
                .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(int.Parse).ToHashSet();
            var missing = loop.Acknowledged.Except(onLeader).ToList();
            Assert.True(missing.Count == 0, $"{loop.Name}: acknowledged rows missing on the leader: {string.Join(", ", missing)}");
            // A terminated INSERT may or may not have committed before it was cut off; nothing else may be there.
            Assert.InRange(onLeader.Count, loop.Succeeded, loop.Succeeded + loop.TerminatedInFlight.Count);
        }
    }

    /// <summary>A client that opens a new connection and runs one INSERT every 50 ms, counting failures and gaps.</summary>
    private sealed class InsertLoop(string name, string connectionString, string table)
    {
        private readonly List<string> _failures = [];
        private readonly List<string> _terminatedInFlight = [];
        private readonly List<int> _acknowledged = [];
        private TimeSpan _lastSuccess = TimeSpan.MinValue;

        public string Name => name;

        public int Succeeded { get; private set; }

        public int Failed => _failures.Count;

        public IReadOnlyList<string> Failures => _failures;

        /// <summary>Inserts sent on an open session that the server then terminated (57P01): not the proxy's to hide.</summary>
        public IReadOnlyList<string> TerminatedInFlight => _terminatedInFlight;

        /// <summary>The numbers of the rows whose INSERT was acknowledged.</summary>
        public IReadOnlyList<int> Acknowledged => _acknowledged;

        /// <summary>Longest time between two successful inserts (the write outage a user sees).</summary>
        public TimeSpan LongestGap { get; private set; }

        public async Task RunAsync(CancellationToken stop)
        {
            var clock = Stopwatch.StartNew();
            var next = TimeSpan.Zero;
            for (var n = 1; !stop.IsCancellationRequested; n++)
            {
                var open = false;
                try
                {
                    await using var connection = new NpgsqlConnection(connectionString);
                    await connection.OpenAsync(CancellationToken.None);
                    open = true;
                    await using var insert = new NpgsqlCommand($"insert into {table} values (@client, @n)", connection);
                    insert.Parameters.AddWithValue("client", name);
                    insert.Parameters.AddWithValue("n", n);
                    await insert.ExecuteNonQueryAsync(CancellationToken.None);
                    var now = clock.Elapsed;
                    if (_lastSuccess != TimeSpan.MinValue && now - _lastSuccess > LongestGap)
                    {
                        LongestGap = now - _lastSuccess;
                    }
                    _lastSuccess = now;
                    Succeeded++;
                    _acknowledged.Add(n);
                }
                catch (PostgresException ex) when (open && ex.SqlState == PostgresErrorCodes.AdminShutdown)
                {
                    _terminatedInFlight.Add($"#{n} at {DateTime.Now:HH:mm:ss.fff}: terminated in flight: {ex.Message}");
                }
                catch (Exception ex) when (ex is NpgsqlException or IOException or TimeoutException or InvalidOperationException)
                {
                    _failures.Add($"#{n} at {DateTime.Now:HH:mm:ss.fff}: {ex.GetType().Name}: {ex.Message}");
                }

                // One attempt every 50 ms (sooner after a slow one, never two at once).
                next += Interval;
                var wait = next - clock.Elapsed;
                if (wait > TimeSpan.Zero)
                {
                    try
                    {
                        await Task.Delay(wait, stop);
                    }
                    catch (OperationCanceledException)
                    {
                        return;
                    }
                }
                else
                {
                    next = clock.Elapsed;
                }
            }
        }
    }
}
