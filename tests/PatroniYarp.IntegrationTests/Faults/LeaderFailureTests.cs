using PatroniYarp.IntegrationTests.Infrastructure;
using PatroniYarp.Testing;

namespace PatroniYarp.IntegrationTests.Faults;

/// <summary>
/// The leader dies (kill -9 of its postmaster) or loses its DCS (etcd stopped) while writes flow through the leader
/// port, one new session per write: no acknowledged write is ever taken by a replica or lost, sessions to the old
/// leader close, and the leader port follows Patroni to the new leader.
/// </summary>
[Collection(RealClusterCollection.Name)]
public sealed class LeaderFailureTests(RealClusterFixture fixture) : IAsyncLifetime
{
    private readonly PatroniClusterScript _cluster = fixture.Cluster;
    private readonly int _masterPort = FreePort.Next();
    private PatroniYarpProcess _proxy = null!;
    private string _leader = "";

    public async Task InitializeAsync()
    {
        _leader = await _cluster.LeaderAsync();
        var admin = FreePort.Next();
        _proxy = await PatroniYarpProcess.StartAsync(TestYaml.Config(admin, TestYaml.Port("master", _masterPort, "leader")), admin);
        await ProxyState.WaitForDestinationsAsync(_proxy, "master", [_leader]);
    }

    public async Task DisposeAsync()
    {
        await _proxy.DisposeAsync();
        // Leave a healthy cluster to the next test (the old leader may still be rejoining).
        await _cluster.UpAsync();
    }

    [Fact]
    public async Task FailoverKill_LeaderPostmasterKilled_ItsSessionsCloseNewSessionsReachNewLeaderNoWriteOnReplicaOrLost()
    {
        // Synchronous mode: an acknowledged write is on the sync standby, the one Patroni promotes, so none may be lost.
        await _cluster.SyncAsync(on: true);
        try
        {
            await using var writes = await WriteLoop.StartAsync(_masterPort, PatroniClusterScript.PortOf(_leader), "fault_failover_writes");
            await writes.WaitForMoreAsync(5, TimeSpan.FromSeconds(30));
            await using var toOldLeader = await Pg.OpenAsync(_masterPort);

            var old = await _cluster.FailoverKillAsync();

            await Eventually.UntilAsync(async () => !await Pg.AliveAsync(toOldLeader), TimeSpan.FromSeconds(30), "the old leader's session to close");
            var promoted = await Eventually.ValueAsync(async () =>
            {
                var leader = await _cluster.LeaderAsync();
                return leader != old ? leader : null;
            }, TimeSpan.FromSeconds(90), "Patroni to promote another member");
            // Patroni names the new leader as soon as it holds the leader key, a moment before PostgreSQL has finished
            // promoting: a session opened then lands on it read-only (PostgreSQL refuses its writes, nothing is misrouted).
            await Eventually.UntilAsync(async () =>
                await Pg.WhereAsync(_masterPort) == new Landing(PatroniClusterScript.PortOf(promoted), InRecovery: false),
                TimeSpan.FromSeconds(30), $"a writable leader-port session on {promoted}");
            await writes.WaitForMoreAsync(5, TimeSpan.FromSeconds(30));
            await writes.StopAsync();

            Assert.All(writes.Acknowledged, w => Assert.False(w.InRecovery, $"write {w.Id} was taken by a replica on {w.ServerPort}"));
            Assert.Empty(await writes.MissingOnAsync(PatroniClusterScript.PortOf(promoted)));
        }
        finally
        {
            await _cluster.UpAsync();
            await _cluster.SyncAsync(on: false);
        }
    }

    [Fact]
    public async Task EtcdStopped_LeaderDemotesAfterTtl_NoWriteSucceedsUntilEtcdReturns_ThenLeaderPortFollowsTheNewLeader()
    {
        await using var writes = await WriteLoop.StartAsync(_masterPort, PatroniClusterScript.PortOf(_leader), "fault_etcd_writes");
        await writes.WaitForMoreAsync(3, TimeSpan.FromSeconds(30));

        await _cluster.EtcdStopAsync();
        try
        {
            // Patroni's own rule: a leader that cannot renew its key within ttl (10 s) demotes itself to read-only.
            await Eventually.UntilAsync(async () => (await Pg.WhereAsync(PatroniClusterScript.PortOf(_leader))).InRecovery,
                TimeSpan.FromSeconds(60), $"{_leader} to demote itself");
            var acknowledgedAtDemotion = writes.Acknowledged.Count;
            await writes.WaitForMoreAttemptsAsync(10, TimeSpan.FromSeconds(120));

            Assert.Equal(acknowledgedAtDemotion, writes.Acknowledged.Count);
        }
        finally
        {
            await _cluster.EtcdStartAsync();
        }

        var leader = await Eventually.ValueAsync(() => _cluster.LeaderAsync()!, TimeSpan.FromSeconds(90), "a leader after etcd returned");
        await ProxyState.WaitForDestinationsAsync(_proxy, "master", [leader], TimeSpan.FromSeconds(60));
        await writes.WaitForMoreAsync(3, TimeSpan.FromSeconds(60));
        await writes.StopAsync();
        Assert.All(writes.Acknowledged, w => Assert.False(w.InRecovery, $"write {w.Id} was taken by a replica on {w.ServerPort}"));
    }
}
