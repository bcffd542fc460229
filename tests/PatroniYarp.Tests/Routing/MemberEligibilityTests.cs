using PatroniYarp.Configuration;
using PatroniYarp.Patroni;
using PatroniYarp.Routing;
using static PatroniYarp.Tests.Routing.RoutingTestData;

namespace PatroniYarp.Tests.Routing;

public class MemberEligibilityTests
{
    private static readonly Dictionary<string, string> NoLoadBalance = new() { ["noloadbalance"] = "true" };

    private static bool Eligible(PatroniMember member, PortOptions port, params PatroniMember[] others) =>
        MemberEligibility.EligibleMembers(Snapshot(1, [member, .. others]), port).Contains(member);

    [Theory]
    [InlineData("leader", "Leader", true)]
    [InlineData("leader", "SyncStandby", false)]
    [InlineData("leader", "Replica", false)]
    [InlineData("master", "Leader", true)]
    [InlineData("primary", "Leader", true)]
    [InlineData("standby_leader", "StandbyLeader", true)]
    [InlineData("standby_leader", "Leader", false)]
    [InlineData("sync", "SyncStandby", true)]
    [InlineData("sync", "QuorumStandby", true)]
    [InlineData("sync", "Replica", false)]
    [InlineData("sync", "Leader", false)]
    [InlineData("async", "Replica", true)]
    [InlineData("async", "SyncStandby", false)]
    [InlineData("async", "QuorumStandby", false)]
    [InlineData("replica", "SyncStandby", true)]
    [InlineData("replica", "QuorumStandby", true)]
    [InlineData("replica", "Replica", true)]
    [InlineData("replica", "Leader", false)]
    [InlineData("any", "Leader", true)]
    [InlineData("any", "StandbyLeader", true)]
    [InlineData("any", "SyncStandby", true)]
    [InlineData("any", "Replica", true)]
    [InlineData("any", "Unknown", false)]
    [InlineData("ANY", "Replica", true)]
    public void EligibleMembers_PortRole_MatchesMemberRoles(string portRole, string memberRole, bool expected)
    {
        var member = Member("m", Enum.Parse<MemberRole>(memberRole));
        Assert.Equal(expected, Eligible(member, Port("127.0.0.1:6432", portRole)));
    }

    [Theory]
    [InlineData("running", true)]
    [InlineData("streaming", true)]
    [InlineData("in archive recovery", true)]
    [InlineData("starting", false)]
    [InlineData("stopped", false)]
    [InlineData("crashed", false)]
    [InlineData("restarting", false)]
    [InlineData("creating replica", false)]
    [InlineData("start failed", false)]
    [InlineData("something new", false)]
    public void EligibleMembers_MemberState_OnlyServingStatesAreEligible(string state, bool expected)
    {
        Assert.Equal(expected, Eligible(Member("r", MemberRole.Replica, state), Port("127.0.0.1:6432", "any")));
        Assert.Equal(expected, Eligible(Member("l", MemberRole.Leader, state), Port("127.0.0.1:6432", "leader")));
    }

    [Fact]
    public void EligibleMembers_NoLoadBalanceReplica_IsExcluded()
    {
        var replica = Member("r", MemberRole.Replica, tags: NoLoadBalance);
        Assert.False(Eligible(replica, Port("127.0.0.1:6432", "async")));
        Assert.False(Eligible(replica, Port("127.0.0.1:6432", "any")));
    }

    [Fact]
    public void EligibleMembers_NoLoadBalanceLeaderOnLeaderPort_StaysEligible()
    {
        var leader = Member("l", MemberRole.Leader, tags: NoLoadBalance);
        Assert.True(Eligible(leader, Port("127.0.0.1:6432", "leader")));
        Assert.True(Eligible(leader, Port("127.0.0.1:6432", "any")));
    }

    [Fact]
    public void EligibleMembers_NoLoadBalanceFalse_DoesNotExclude()
    {
        var replica = Member("r", MemberRole.Replica, tags: new Dictionary<string, string> { ["noloadbalance"] = "false" });
        Assert.True(Eligible(replica, Port("127.0.0.1:6432", "async")));
    }

    [Theory]
    [InlineData(null, false)]
    [InlineData(1025L, false)]
    [InlineData(1024L, true)]
    [InlineData(0L, true)]
    public void EligibleMembers_LagLimit_ReplicaNeedsKnownLagWithinLimit(long? lag, bool expected)
    {
        var port = Port("127.0.0.1:6432", "replica") with { MaxLagInBytes = 1024 };
        Assert.Equal(expected, Eligible(Member("r", MemberRole.Replica, lag: lag), port));
        Assert.Equal(expected, Eligible(Member("s", MemberRole.SyncStandby, lag: lag), port));
    }

    [Theory]
    [InlineData(null)]
    [InlineData(5000L)]
    public void EligibleMembers_LagLimit_LeaderIsExempt(long? lag)
    {
        var port = Port("127.0.0.1:6432", "any") with { MaxLagInBytes = 1024 };
        Assert.True(Eligible(Member("l", MemberRole.Leader, lag: lag), port));
    }

    [Fact]
    public void EligibleMembers_NoLagLimit_UnknownLagIsEligible()
    {
        Assert.True(Eligible(Member("r", MemberRole.Replica, lag: null), Port("127.0.0.1:6432", "async")));
    }

    [Fact]
    public void EligibleMembers_TwoLeaders_NeitherIsEligible()
    {
        var first = Member("a", MemberRole.Leader);
        var second = Member("b", MemberRole.Leader);
        var replica = Member("r", MemberRole.Replica);
        var snapshot = Snapshot(1, first, second, replica);

        Assert.Empty(MemberEligibility.EligibleMembers(snapshot, Port("127.0.0.1:6432", "leader")));
        // Replicas still serve their ports; only the writer is withheld.
        Assert.Equal(new[] { replica }, MemberEligibility.EligibleMembers(snapshot, Port("127.0.0.1:6432", "any")));
    }

    [Theory]
    [InlineData("leader", false)]
    [InlineData("primary", false)]
    [InlineData("any", true)]
    public void EligibleMembers_UnconfirmedLeader_OnlyOnPortsThatTakeReplicasToo(string portRole, bool expected)
    {
        // /cluster names a new leader before its promotion ends: a writers-only port must not use it yet.
        var leader = Member("l", MemberRole.Leader);
        var snapshot = Unconfirmed(1, leader, Member("r", MemberRole.Replica));

        Assert.Equal(expected, MemberEligibility.EligibleMembers(snapshot, Port("127.0.0.1:6432", portRole)).Contains(leader));
        Assert.Contains(leader, MemberEligibility.EligibleMembers(snapshot with { LeaderConfirmed = true }, Port("127.0.0.1:6432", portRole)));
    }

    [Fact]
    public void EligibleMembers_NoLeader_LeaderPortIsEmpty()
    {
        var snapshot = Snapshot(1, Member("s", MemberRole.SyncStandby), Member("r", MemberRole.Replica));
        Assert.Empty(MemberEligibility.EligibleMembers(snapshot, Port("127.0.0.1:6432", "leader")));
    }

    [Fact]
    public void TargetPort_HostPortSet_OverridesMemberPort()
    {
        var member = Member("r", MemberRole.Replica, port: 5433);
        Assert.Equal(5432, MemberEligibility.TargetPort(member, Port("127.0.0.1:6432", "any") with { HostPort = 5432 }));
        Assert.Equal(5433, MemberEligibility.TargetPort(member, Port("127.0.0.1:6432", "any")));
    }
}
