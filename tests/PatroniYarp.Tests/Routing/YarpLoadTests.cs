using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using PatroniYarp.Configuration;
using PatroniYarp.Patroni;
using PatroniYarp.Routing;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;
using static PatroniYarp.Tests.Routing.RoutingTestData;
using ClusterState = Yarp.ReverseProxy.Model.ClusterState;

namespace PatroniYarp.Tests.Routing;

/// <summary>YARP itself loads what the provider publishes, follows store changes, and never falls back to panic.</summary>
public sealed class YarpLoadTests : IAsyncLifetime
{
    private readonly ClusterStateStore _store = Store(Sample302());
    private WebApplication _app = null!;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        builder.Services.AddSingleton(_store);
        builder.Services.AddSingleton<IOptionsMonitor<ProxyOptions>>(new TestOptionsMonitor<ProxyOptions>(SampleOptions()));
        builder.Services.AddPatroniRouting();
        _app = builder.Build();
        _app.MapReverseProxy();
        await _app.StartAsync();
    }

    public async Task DisposeAsync() => await _app.DisposeAsync();

    private IProxyStateLookup Lookup => _app.Services.GetRequiredService<IProxyStateLookup>();

    private ClusterState YarpCluster(string port)
    {
        Assert.True(Lookup.TryGetCluster(ProxyClusterIds.ForPort(Cluster, port), out var cluster), $"YARP has no cluster for port {port}");
        return cluster;
    }

    private static string[] Ids(IEnumerable<DestinationState> destinations) =>
        [.. destinations.Select(d => d.DestinationId).Order(StringComparer.Ordinal)];

    [Fact]
    public void Load_Sample302_YarpHoldsPortClustersAndDestinations()
    {
        Assert.Equal(["pg1"], Ids(YarpCluster("master").DestinationsState.AvailableDestinations));
        Assert.Equal(["pg0", "pg2"], Ids(YarpCluster("replicas").DestinationsState.AvailableDestinations));
        Assert.Equal("tcp://127.0.0.1:5431", YarpCluster("master").Destinations["pg1"].Model.Config.Address);
    }

    [Fact]
    public async Task SetPassive_OnlyLeaderUnhealthy_NoDestinationAvailable()
    {
        var master = YarpCluster("master");
        var updater = _app.Services.GetRequiredService<IDestinationHealthUpdater>();

        updater.SetPassive(master, master.Destinations["pg1"], DestinationHealth.Unhealthy, TimeSpan.FromMinutes(5));

        // HealthyOrPanic would hand back pg1 (or, with replicas in the cluster, any of them); ours gives none.
        await WaitUntilAsync(() => master.DestinationsState.AvailableDestinations.Count == 0, "pg1 is no longer available");
        Assert.Equal(["pg1"], Ids(master.DestinationsState.AllDestinations));
    }

    [Fact]
    public async Task SetPassive_OneReplicaUnhealthy_OtherStaysAvailable()
    {
        var replicas = YarpCluster("replicas");
        var updater = _app.Services.GetRequiredService<IDestinationHealthUpdater>();

        updater.SetPassive(replicas, replicas.Destinations["pg2"], DestinationHealth.Unhealthy, TimeSpan.FromMinutes(5));

        await WaitUntilAsync(() => Ids(replicas.DestinationsState.AvailableDestinations).SequenceEqual(["pg0"]), "only pg0 is available");
    }

    [Fact]
    public async Task StoreChange_Switchover_YarpFollowsAndKeepsDestinationState()
    {
        var pg0Before = YarpCluster("replicas").Destinations["pg0"];

        _store.TryApply(Cluster, Snapshot(2,
            Member("pg0", MemberRole.SyncStandby, port: 5430),
            Member("pg1", MemberRole.Replica, port: 5431),
            Member("pg2", MemberRole.Leader, port: 5432)));

        await WaitUntilAsync(() => Ids(YarpCluster("master").DestinationsState.AvailableDestinations).SequenceEqual(["pg2"]), "pg2 leads");
        await WaitUntilAsync(() => Ids(YarpCluster("replicas").DestinationsState.AvailableDestinations).SequenceEqual(["pg0", "pg1"]), "pg0 and pg1 replicate");
        // Same member, same id: YARP keeps its state object (health, per-destination state of the TCP side).
        Assert.Same(pg0Before, YarpCluster("replicas").Destinations["pg0"]);
    }
}
