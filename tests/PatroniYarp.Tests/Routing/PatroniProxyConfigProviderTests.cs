using Microsoft.Extensions.Logging.Abstractions;
using PatroniYarp.Configuration;
using PatroniYarp.Patroni;
using PatroniYarp.Routing;
using Yarp.ReverseProxy.Configuration;
using static PatroniYarp.Tests.Routing.RoutingTestData;

namespace PatroniYarp.Tests.Routing;

public class PatroniProxyConfigProviderTests
{
    private static PatroniProxyConfigProvider Provider(
        ClusterStateStore store,
        TestOptionsMonitor<ProxyOptions> options,
        params IProxyConfigContributor[] contributors) =>
        new(store, options, contributors, NullLogger<PatroniProxyConfigProvider>.Instance);

    private static ClusterConfig PortCluster(IProxyConfig config, string port) =>
        Assert.Single(config.Clusters, c => c.ClusterId == $"{Cluster}/{port}");

    private static string[] DestinationIds(IProxyConfig config, string port) =>
        [.. PortCluster(config, port).Destinations!.Keys.Order(StringComparer.Ordinal)];

    [Fact]
    public void GetConfig_Sample302_OneClusterPerPortWithEligibleMembers()
    {
        using var provider = Provider(Store(Sample302(pg2Lag: 4096)), new(SampleOptions()));

        var config = provider.GetConfig();

        Assert.Equal(["main/fresh", "main/master", "main/replicas"], config.Clusters.Select(c => c.ClusterId));
        Assert.Empty(config.Routes);
        Assert.Equal(["pg1"], DestinationIds(config, "master"));
        Assert.Equal(["pg0", "pg2"], DestinationIds(config, "replicas"));
        // pg2 lags 4 KiB behind, more than the port's 1 KiB.
        Assert.Equal(["pg0"], DestinationIds(config, "fresh"));
    }

    [Fact]
    public void GetConfig_Leader_DestinationCarriesAddressAndMetadata()
    {
        using var provider = Provider(Store(Sample302()), new(SampleOptions()));

        var leader = PortCluster(provider.GetConfig(), "master").Destinations!["pg1"];

        Assert.Equal("tcp://127.0.0.1:5431", leader.Address);
        Assert.Equal(new Dictionary<string, string>
        {
            ["member"] = "pg1",
            ["role"] = "leader",
            ["state"] = "running",
            ["host"] = "127.0.0.1",
            ["port"] = "5431",
            ["timeline"] = "7",
            ["api_url"] = "http://127.0.0.1:8008/patroni",
        }, leader.Metadata);
        Assert.Equal("sync_standby", PortCluster(provider.GetConfig(), "replicas").Destinations!["pg0"].Metadata!["role"]);
    }

    [Fact]
    public void GetConfig_HostPortAndIpv6Member_AddressUsesHostPortAndBrackets()
    {
        var options = Options(new Dictionary<string, PortOptions> { ["master"] = Port("127.0.0.1:6432", "leader") with { HostPort = 6000 } });
        using var provider = Provider(Store(Snapshot(1, Member("pg1", MemberRole.Leader, host: "::1", port: 5431))), new(options));

        Assert.Equal("tcp://[::1]:6000", PortCluster(provider.GetConfig(), "master").Destinations!["pg1"].Address);
    }

    [Fact]
    public void GetConfig_EveryPortCluster_UsesHealthyOnlyPolicyWithPassiveChecks()
    {
        using var provider = Provider(Store(Sample302()), new(SampleOptions()));

        Assert.All(provider.GetConfig().Clusters, cluster =>
        {
            Assert.Equal("HealthyAndUnknown", cluster.HealthCheck!.AvailableDestinationsPolicy);
            Assert.True(cluster.HealthCheck.Passive!.Enabled);
            Assert.Equal(TcpConnectFailurePolicy.PolicyName, cluster.HealthCheck.Passive.Policy);
        });
    }

    [Fact]
    public void GetConfig_NoSnapshotYet_PortClustersHaveNoDestinations()
    {
        using var provider = Provider(Store(null), new(SampleOptions()));

        Assert.All(provider.GetConfig().Clusters, cluster => Assert.Empty(cluster.Destinations!));
    }

    [Fact]
    public void StoreChange_NewLeader_PublishesNewConfigAndFiresToken()
    {
        var store = Store(Sample302());
        using var provider = Provider(store, new(SampleOptions()));
        var before = provider.GetConfig();

        store.TryApply(Cluster, Snapshot(2,
            Member("pg0", MemberRole.Leader, port: 5430),
            Member("pg1", MemberRole.Replica, port: 5431),
            Member("pg2", MemberRole.Replica, port: 5432)));

        Assert.True(before.ChangeToken.HasChanged);
        var after = provider.GetConfig();
        Assert.Equal(["pg0"], DestinationIds(after, "master"));
        Assert.Equal(["pg1", "pg2"], DestinationIds(after, "replicas"));
        Assert.False(after.ChangeToken.HasChanged);
    }

    [Fact]
    public void StoreChange_SameMembers_PublishesNothing()
    {
        var store = Store(Sample302(sequence: 1));
        using var provider = Provider(store, new(SampleOptions()));
        var before = provider.GetConfig();

        // A newer poll that says the same thing changes the store (new sequence) but not the YARP config.
        Assert.True(store.TryApply(Cluster, Sample302(sequence: 2)));

        Assert.False(before.ChangeToken.HasChanged);
        Assert.Same(before, provider.GetConfig());
    }

    [Fact]
    public void StoreChange_ReplicaLeaves_OtherDestinationsKeepTheirIds()
    {
        var store = Store(Sample302());
        using var provider = Provider(store, new(SampleOptions()));

        store.TryApply(Cluster, Snapshot(2,
            Member("pg0", MemberRole.SyncStandby, port: 5430),
            Member("pg1", MemberRole.Leader, port: 5431),
            Member("pg2", MemberRole.Replica, "stopped", port: 5432)));

        Assert.Equal(["pg0"], DestinationIds(provider.GetConfig(), "replicas"));
        Assert.Equal(["pg1"], DestinationIds(provider.GetConfig(), "master"));
    }

    [Fact]
    public void StoreChange_ClusterGoesStale_KeepsLastMembers()
    {
        var store = Store(Sample302());
        using var provider = Provider(store, new(SampleOptions()));
        var before = provider.GetConfig();

        store.ReportFailure(Cluster, sequence: 2, "all hosts failed", DateTimeOffset.UtcNow);

        Assert.True(store.Clusters[Cluster].IsStale);
        Assert.Same(before, provider.GetConfig());
        Assert.Equal(["pg1"], DestinationIds(provider.GetConfig(), "master"));
    }

    [Fact]
    public void OptionsChange_PortAdded_PublishesItsCluster()
    {
        var options = new TestOptionsMonitor<ProxyOptions>(SampleOptions());
        using var provider = Provider(Store(Sample302()), options);
        var before = provider.GetConfig();

        options.Set(Options(new Dictionary<string, PortOptions>(SampleOptions().Clusters[Cluster].Ports)
        {
            ["all"] = Port("127.0.0.1:6435", "any"),
        }));

        Assert.True(before.ChangeToken.HasChanged);
        Assert.Equal(["pg0", "pg1", "pg2"], DestinationIds(provider.GetConfig(), "all"));
    }

    [Fact]
    public void OptionsChange_SameContent_PublishesNothing()
    {
        var options = new TestOptionsMonitor<ProxyOptions>(SampleOptions());
        using var provider = Provider(Store(Sample302()), options);
        var before = provider.GetConfig();

        options.Set(SampleOptions());

        Assert.Same(before, provider.GetConfig());
    }

    [Fact]
    public void GetConfig_Contributor_RoutesAndClustersAreMerged()
    {
        var route = new RouteConfig { RouteId = "primary", ClusterId = "checks", Match = new RouteMatch { Path = "/primary" } };
        var checks = new ClusterConfig { ClusterId = "checks" };
        using var provider = Provider(Store(Sample302()), new(SampleOptions()), new FixedContributor(new([route], [checks])));

        var config = provider.GetConfig();

        Assert.Equal([route], config.Routes);
        Assert.Contains(checks, config.Clusters);
        Assert.Equal(4, config.Clusters.Count);
    }

    private sealed class FixedContributor(ProxyConfigContribution contribution) : IProxyConfigContributor
    {
        public ProxyConfigContribution Contribute(ProxyOptions options, IReadOnlyDictionary<string, ClusterState> clusters) => contribution;
    }
}
