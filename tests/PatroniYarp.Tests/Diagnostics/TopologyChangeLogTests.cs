using PatroniYarp.Diagnostics;
using PatroniYarp.Patroni;
using static PatroniYarp.Tests.Routing.RoutingTestData;

namespace PatroniYarp.Tests.Diagnostics;

public class TopologyChangeLogTests
{
    private static readonly Dictionary<string, string> NoLoadBalance = new() { ["noloadbalance"] = "true" };

    [Fact]
    public void WhyLeft_MemberGone_MemberRemoved()
    {
        var reason = TopologyChangeLog.WhyLeft("pg2", Port("x", "replica"), Sample302(), Snapshot(2, Member("pg1", MemberRole.Leader)));

        Assert.Equal((ProxyMetrics.Reasons.MemberRemoved, "no longer in the cluster"), reason);
    }

    [Fact]
    public void WhyLeft_DemotedLeaderStillStopped_RoleChangeNotState()
    {
        var after = Snapshot(2, Member("pg1", MemberRole.Replica, state: "stopped"), Member("pg0", MemberRole.Leader));

        var reason = TopologyChangeLog.WhyLeft("pg1", Port("x", "leader"), Sample302(), after);

        Assert.Equal((ProxyMetrics.Reasons.RoleChange, "leader → replica"), reason);
    }

    [Fact]
    public void WhyLeft_ReplicaStopped_StateChange()
    {
        var after = Snapshot(2, Member("pg1", MemberRole.Leader), Member("pg2", MemberRole.Replica, state: "stopped"));

        Assert.Equal((ProxyMetrics.Reasons.StateChange, "state stopped"),
            TopologyChangeLog.WhyLeft("pg2", Port("x", "replica"), Sample302(), after));
    }

    [Fact]
    public void WhyLeft_Tagged_NoLoadBalance()
    {
        var after = Snapshot(2, Member("pg1", MemberRole.Leader), Member("pg2", MemberRole.Replica, tags: NoLoadBalance));

        Assert.Equal(ProxyMetrics.Reasons.NoLoadBalance, TopologyChangeLog.WhyLeft("pg2", Port("x", "replica"), Sample302(), after).Reason);
    }

    [Fact]
    public void WhyLeft_LagOverLimit_LagWithSizes()
    {
        var port = Port("x", "replica") with { MaxLagInBytes = 16L << 20 };

        var reason = TopologyChangeLog.WhyLeft("pg2", port, Sample302(), Sample302(2, pg2Lag: 20L << 20));

        Assert.Equal((ProxyMetrics.Reasons.Lag, "lag 20 MB > 16 MB"), reason);
    }

    [Fact]
    public void WhyLeft_PortRolesChangedByReload_Reload()
    {
        var reason = TopologyChangeLog.WhyLeft("pg2", Port("x", "sync"), Sample302(), Sample302(2));

        Assert.Equal((ProxyMetrics.Reasons.Reload, "role replica not wanted by the port"), reason);
    }

    [Theory]
    [InlineData(0, "0 B")]
    [InlineData(1023, "1023 B")]
    [InlineData(1536, "1.5 kB")]
    [InlineData(16L << 20, "16 MB")]
    [InlineData(3L << 30, "3 GB")]
    public void FormatBytes_Sizes_ReadableBinaryUnits(long bytes, string expected) =>
        Assert.Equal(expected, TopologyChangeLog.FormatBytes(bytes));
}
