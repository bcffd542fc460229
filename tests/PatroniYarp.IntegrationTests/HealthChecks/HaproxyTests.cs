using PatroniYarp.IntegrationTests.Infrastructure;
using PatroniYarp.Testing;

namespace PatroniYarp.IntegrationTests.HealthChecks;

/// <summary>
/// HAProxy as Patroni's documentation sets it up (option httpchk OPTIONS /primary and /replica), with its checks
/// pointed at PatroniYarp sidecars instead of Patroni: psql sessions reach the leader and a replica, and follow a
/// switchover.
/// </summary>
[Collection(RealClusterCollection.Name)]
public sealed class HaproxyTests(RealClusterFixture fixture, SidecarsFixture sidecars) : IClassFixture<SidecarsFixture>, IAsyncLifetime
{
    private readonly PatroniClusterScript _cluster = fixture.Cluster;
    private readonly int _primaryPort = FreePort.Next();
    private readonly int _replicaPort = FreePort.Next();
    private Haproxy _haproxy = null!;

    public Task InitializeAsync()
    {
        string Servers() => string.Concat(PatroniClusterScript.Members.Select(member =>
            $"    server {member} 127.0.0.1:{PatroniClusterScript.PortOf(member)} check port {sidecars.ByMember[member].Port}\n"));
        _haproxy = Haproxy.Start($"""
            global
                maxconn 200
            defaults
                mode tcp
                timeout connect 2s
                timeout client 60s
                timeout server 60s
                timeout check 2s
                default-server inter 300ms fall 2 rise 1 on-marked-down shutdown-sessions
            listen primary
                bind 127.0.0.1:{_primaryPort}
                option httpchk OPTIONS /primary
                http-check expect status 200
            {Servers()}
            listen replicas
                bind 127.0.0.1:{_replicaPort}
                balance roundrobin
                option httpchk OPTIONS /replica
                http-check expect status 200
            {Servers()}
            """);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _haproxy.DisposeAsync();

    [Fact]
    public async Task Psql_ThroughHaproxy_ReachesLeaderAndReplica_AndFollowsSwitchover()
    {
        var leader = await _cluster.LeaderAsync();
        await WaitForLandingAsync(_primaryPort, PatroniClusterScript.PortOf(leader), inRecovery: false, "the leader through HAProxy's primary");
        var replicaPort = await ReplicaLandingAsync();
        Assert.NotEqual(PatroniClusterScript.PortOf(leader), replicaPort);

        await _cluster.SwitchoverAsync();
        var newLeader = await _cluster.LeaderAsync();
        Assert.NotEqual(leader, newLeader);

        await WaitForLandingAsync(_primaryPort, PatroniClusterScript.PortOf(newLeader), inRecovery: false, "the new leader through HAProxy's primary");
        Assert.NotEqual(PatroniClusterScript.PortOf(newLeader), await ReplicaLandingAsync());
    }

    private static async Task WaitForLandingAsync(int port, int serverPort, bool inRecovery, string what) =>
        await Eventually.UntilAsync(async () => await LandAsync(port) == $"{serverPort}|{(inRecovery ? "t" : "f")}",
            TimeSpan.FromSeconds(60), what);

    private async Task<int> ReplicaLandingAsync() =>
        (int)await Eventually.ValueAsync<object>(async () =>
        {
            var landing = (await LandAsync(_replicaPort)).Split('|');
            return landing[1] == "t" ? int.Parse(landing[0], System.Globalization.CultureInfo.InvariantCulture) : null;
        }, TimeSpan.FromSeconds(60), "a replica through HAProxy's replicas");

    /// <summary>A real psql session: "port|in recovery" of the server it reached.</summary>
    private static async Task<string> LandAsync(int port) =>
        (await Psql.RunAsync($"host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=3",
            "select inet_server_port() || '|' || case when pg_is_in_recovery() then 't' else 'f' end")).Trim();
}
