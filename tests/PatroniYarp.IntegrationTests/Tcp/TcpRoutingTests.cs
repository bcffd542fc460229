using Npgsql;
using PatroniYarp.IntegrationTests.Infrastructure;
using PatroniYarp.Testing;

namespace PatroniYarp.IntegrationTests.Tcp;

/// <summary>
/// Where PostgreSQL sessions through PatroniYarp land on the real cluster, and which survive when it changes.
/// Sessions are real (Npgsql, no pooling); where one landed is asked of the server itself.
/// </summary>
[Collection(RealClusterCollection.Name)]
public sealed class TcpRoutingTests(RealClusterFixture fixture) : IAsyncLifetime
{
    private readonly PatroniClusterScript _cluster = fixture.Cluster;
    private readonly int _masterPort = FreePort.Next();
    private readonly int _replicasPort = FreePort.Next();
    private readonly List<NpgsqlConnection> _sessions = [];
    private PatroniYarpProcess _proxy = null!;
    private string _leader = "";
    private string[] _replicas = [];

    public async Task InitializeAsync()
    {
        _leader = await _cluster.LeaderAsync();
        _replicas = [.. PatroniClusterScript.Members.Where(m => m != _leader)];
        var admin = FreePort.Next();
        _proxy = await PatroniYarpProcess.StartAsync(TestYaml.Config(admin,
            TestYaml.Port("master", _masterPort, "leader") +
            TestYaml.Port("replicas", _replicasPort, "sync, async", "max_lag_in_bytes: 1048576")), admin);
        await ProxyState.WaitForDestinationsAsync(_proxy, "master", [_leader]);
        await ProxyState.WaitForDestinationsAsync(_proxy, "replicas", _replicas);
    }

    public async Task DisposeAsync()
    {
        foreach (var session in _sessions)
        {
            await session.DisposeAsync();
        }
        await _proxy.DisposeAsync();
    }

    [Fact]
    public async Task LeaderPort_NewSession_ReachesLeader()
    {
        var landing = await Pg.WhereAsync(_masterPort);

        Assert.Equal(new Landing(PatroniClusterScript.PortOf(_leader), InRecovery: false), landing);
    }

    [Fact]
    public async Task ReplicasPort_FourSessions_SplitTwoAndTwoOverReplicas()
    {
        var landings = new List<Landing>();
        for (var i = 0; i < 4; i++)
        {
            landings.Add(await Pg.WhereAsync(await OpenAsync(_replicasPort)));
        }

        Assert.All(landings, l => Assert.True(l.InRecovery));
        Assert.Equal(
            _replicas.Select(PatroniClusterScript.PortOf).Order().Select(p => (p, 2)),
            landings.GroupBy(l => l.ServerPort).OrderBy(g => g.Key).Select(g => (g.Key, g.Count())));
    }

    [Fact]
    public async Task Switchover_ClosesSessionsToChangedMembersOnly_NewLeaderSessionsReachPromotedMember()
    {
        var candidate = _replicas[0];
        var stays = _replicas[1];
        var toOldLeader = await OpenAsync(_masterPort);
        var (toCandidate, toStaying) = await OpenOnePerReplicaAsync(candidate, stays);

        await _cluster.SwitchoverAsync(candidate);

        await Eventually.UntilAsync(async () => !await Pg.AliveAsync(toOldLeader), TimeSpan.FromSeconds(10), "the old leader's session to close");
        await Eventually.UntilAsync(async () => !await Pg.AliveAsync(toCandidate), TimeSpan.FromSeconds(10), "the promoted member's replica session to close");
        Assert.Equal(new Landing(PatroniClusterScript.PortOf(stays), true), await Pg.WhereAsync(toStaying));
        // Two poll intervals (1 s each) after Patroni reports the new leader, new sessions reach it.
        var landing = await Eventually.ValueAsync(async () =>
        {
            var where = await Pg.WhereAsync(_masterPort);
            return where.ServerPort == PatroniClusterScript.PortOf(candidate) ? where : null;
        }, TimeSpan.FromSeconds(2 + 2), "a leader-port session on the new leader");
        Assert.False(landing.InRecovery);
    }

    [Fact]
    public async Task Lag_ReplicaOverMaxLag_ItsSessionsCloseAndNewSessionsAvoidIt_UntilItCatchesUp()
    {
        var lagging = _replicas[0];
        var other = _replicas[1];
        var (toLagging, toOther) = await OpenOnePerReplicaAsync(lagging, other);
        try
        {
            await _cluster.WalReceiverStopAsync(lagging);
            // Patroni 3.0 counts lag from received WAL: with the walreceiver stopped, writes on the leader make it grow.
            // Patroni reports each member's position once per loop, so a healthy replica also shows, for a moment,
            // the WAL written since its last report. Writing a quarter of the limit per round, and only after
            // Patroni has reported the previous round, keeps that moment under the limit: only the stopped one leaves.
            await using var leader = await Pg.OpenAsync(PatroniClusterScript.PortOf(_leader));
            var start = await CurrentWalLsnAsync(leader);
            await Eventually.UntilAsync(async () =>
            {
                var written = await WriteWalAsync(leader, start);
                await Eventually.UntilAsync(
                    async () => await ReportedLagAsync(lagging) >= written,
                    TimeSpan.FromSeconds(20), $"Patroni to report {lagging}'s lag");
                return !(await ProxyState.DestinationsAsync(_proxy, "replicas")).Contains(lagging);
            }, TimeSpan.FromSeconds(90), $"{lagging} to leave the lag-limited port");

            await AssertOnlyOtherReplicaServesAsync(toLagging, toOther, other);
        }
        finally
        {
            await _cluster.WalReceiverContAsync(lagging);
        }
        await ProxyState.WaitForDestinationsAsync(_proxy, "replicas", _replicas, TimeSpan.FromSeconds(60));
        await using var again = await OpenAsync(_replicasPort);
        Assert.Equal(PatroniClusterScript.PortOf(lagging), (await Pg.WhereAsync(again)).ServerPort);
    }

    [Fact]
    public async Task NoLoadBalanceTag_OnReplica_ItsSessionsCloseAndNewSessionsAvoidIt()
    {
        var tagged = _replicas[0];
        var other = _replicas[1];
        var (toTagged, toOther) = await OpenOnePerReplicaAsync(tagged, other);
        try
        {
            await _cluster.TagAsync(tagged, "noloadbalance", "true");

            await ProxyState.WaitForDestinationsAsync(_proxy, "replicas", [other]);
            await AssertOnlyOtherReplicaServesAsync(toTagged, toOther, other);
        }
        finally
        {
            await _cluster.UntagAsync(tagged, "noloadbalance");
        }
        await ProxyState.WaitForDestinationsAsync(_proxy, "replicas", _replicas);
    }

    [Fact]
    public async Task StopMember_ReplicaPatroniStopped_ItsSessionsCloseAndTheOtherReplicaTakesNewSessions()
    {
        var stopped = _replicas[0];
        var other = _replicas[1];
        var (toStopped, toOther) = await OpenOnePerReplicaAsync(stopped, other);
        try
        {
            await _cluster.StopMemberAsync(stopped);

            await ProxyState.WaitForDestinationsAsync(_proxy, "replicas", [other]);
            await AssertOnlyOtherReplicaServesAsync(toStopped, toOther, other);
        }
        finally
        {
            await _cluster.StartMemberAsync(stopped);
        }
        await ProxyState.WaitForDestinationsAsync(_proxy, "replicas", _replicas, TimeSpan.FromSeconds(60));
    }

    [Fact]
    public async Task Ssl_RequiredByClient_PassesThroughToPostgres()
    {
        await using var session = await OpenAsync(_masterPort, "SSL Mode=Require");
        await using var command = new NpgsqlCommand("select ssl from pg_stat_ssl where pid = pg_backend_pid()", session);

        Assert.True((bool)(await command.ExecuteScalarAsync())!);
        Assert.Equal(new Landing(PatroniClusterScript.PortOf(_leader), false), await Pg.WhereAsync(session));
    }

    [Fact]
    public async Task Ssl_PsqlWithSslModeRequire_Works()
    {
        var output = await Psql.RunAsync(
            $"host=127.0.0.1 port={_masterPort} user=postgres dbname=postgres sslmode=require",
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()");

        Assert.Equal("t", output.Trim());
    }

    private async Task<NpgsqlConnection> OpenAsync(int port, string extra = "")
    {
        var session = await Pg.OpenAsync(port, extra);
        _sessions.Add(session);
        return session;
    }

    /// <summary>Opens replicas-port sessions until one is on each of the two replicas (least connections alternates).</summary>
    private async Task<(NpgsqlConnection First, NpgsqlConnection Second)> OpenOnePerReplicaAsync(string first, string second)
    {
        var byPort = new Dictionary<int, NpgsqlConnection>();
        for (var i = 0; i < 4 && byPort.Count < 2; i++)
        {
            var session = await OpenAsync(_replicasPort);
            byPort.TryAdd((await Pg.WhereAsync(session)).ServerPort, session);
        }
        return (byPort[PatroniClusterScript.PortOf(first)], byPort[PatroniClusterScript.PortOf(second)]);
    }

    /// <summary>
    /// A replica left the replicas port: its session there closes, the session to <paramref name="other"/> keeps
    /// answering, and a new session lands on <paramref name="other"/>.
    /// </summary>
    private async Task AssertOnlyOtherReplicaServesAsync(NpgsqlConnection toExcluded, NpgsqlConnection toOther, string other)
    {
        await Eventually.UntilAsync(async () => !await Pg.AliveAsync(toExcluded), TimeSpan.FromSeconds(10), "the excluded replica's session to close");
        Assert.True(await Pg.AliveAsync(toOther));
        Assert.Equal(PatroniClusterScript.PortOf(other), (await Pg.WhereAsync(_replicasPort)).ServerPort);
    }

    private static async Task<string> CurrentWalLsnAsync(NpgsqlConnection leader)
    {
        await using var command = new NpgsqlCommand("select pg_current_wal_lsn()::text", leader);
        return (string)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>Writes about 256 KiB of WAL on the leader; returns the bytes of WAL written since <paramref name="start"/>.</summary>
    private static async Task<long> WriteWalAsync(NpgsqlConnection leader, string start)
    {
        // Local commit: with synchronous mode on, a stopped sync standby would otherwise block the write.
        await using var command = new NpgsqlCommand("""
            set synchronous_commit = local;
            create table if not exists lag_filler (x text);
            insert into lag_filler select repeat('x', 1000) from generate_series(1, 200);
            truncate lag_filler;
            select pg_wal_lsn_diff(pg_current_wal_lsn(), @start::pg_lsn)::bigint;
            """, leader);
        command.Parameters.AddWithValue("start", start);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>The lag Patroni reports for <paramref name="member"/> (through PatroniYarp's /clusters); 0 when unknown.</summary>
    private async Task<long> ReportedLagAsync(string member)
    {
        var json = await _proxy.GetJsonAsync("/clusters");
        var entry = json.GetProperty("clusters").GetProperty("demo").GetProperty("members").EnumerateArray()
            .First(m => m.GetProperty("name").GetString() == member);
        return entry.GetProperty("lag").ValueKind == System.Text.Json.JsonValueKind.Number ? entry.GetProperty("lag").GetInt64() : 0;
    }
}
