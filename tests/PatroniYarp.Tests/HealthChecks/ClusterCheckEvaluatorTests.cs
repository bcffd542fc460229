using PatroniYarp.HealthChecks;
using PatroniYarp.Patroni;

namespace PatroniYarp.Tests.HealthChecks;

/// <summary>Patroni's status for each check (patroni/api.py do_GET, do_GET_liveness, do_GET_readiness), member by role.</summary>
public sealed class ClusterCheckEvaluatorTests
{
    private static readonly PatroniMember Leader = Member("pg1", MemberRole.Leader, "running", lag: null);
    private static readonly PatroniMember Sync = Member("pg0", MemberRole.SyncStandby, "streaming", lag: 0);
    private static readonly PatroniMember Async = Member("pg2", MemberRole.Replica, "running", lag: 0);
    private static readonly PatroniMember Quorum = Member("pg3", MemberRole.QuorumStandby, "streaming", lag: 0);
    private static readonly PatroniMember StandbyLeader = Member("s1", MemberRole.StandbyLeader, "streaming", lag: null);

    // Columns: leader, sync standby, async replica, quorum standby, standby leader.
    [Theory]
    [InlineData("primary", 200, 503, 503, 503, 503)]
    [InlineData("master", 200, 503, 503, 503, 503)]
    [InlineData("read-write", 200, 503, 503, 503, 503)]
    [InlineData("leader", 200, 503, 503, 503, 200)]
    [InlineData("standby-leader", 503, 503, 503, 503, 200)]
    [InlineData("replica", 503, 200, 200, 200, 503)]
    [InlineData("read-only", 200, 200, 200, 200, 200)]
    [InlineData("sync", 503, 200, 503, 503, 503)]
    [InlineData("synchronous", 503, 200, 503, 503, 503)]
    [InlineData("async", 503, 503, 200, 503, 503)]
    [InlineData("asynchronous", 503, 503, 200, 503, 503)]
    [InlineData("quorum", 503, 503, 503, 200, 503)]
    [InlineData("read-only-sync", 200, 200, 503, 503, 200)]
    [InlineData("read-only-quorum", 200, 503, 503, 200, 200)]
    [InlineData("health", 200, 200, 200, 200, 200)]
    [InlineData("liveness", 200, 200, 200, 200, 200)]
    [InlineData("readiness", 200, 200, 200, 200, 200)]
    public void Evaluate_EachCheckByRole_PatroniStatus(string check, int leader, int sync, int async, int quorum, int standbyLeader)
    {
        Assert.Equal(
            [leader, sync, async, quorum, standbyLeader],
            new[] { Leader, Sync, Async, Quorum, StandbyLeader }.Select(m => ClusterCheckEvaluator.Evaluate(check, m, PatroniQuery.Empty).Status));
    }

    [Theory]
    [InlineData("replica")]
    [InlineData("read-only")]
    [InlineData("async")]
    [InlineData("health")]
    public void Evaluate_ReplicaNotRunning_503(string check)
    {
        var stopped = Async with { State = "stopped" };

        Assert.Equal(503, ClusterCheckEvaluator.Evaluate(check, stopped, PatroniQuery.Empty).Status);
    }

    [Theory]
    [InlineData("replica", 503)]
    [InlineData("read-only", 503)]
    [InlineData("async", 503)]
    [InlineData("health", 200)]
    public void Evaluate_NoLoadBalanceReplica_OnlyHealthStays200(string check, int expected)
    {
        var tagged = Async with { Tags = new Dictionary<string, string> { ["noloadbalance"] = "true" } };

        Assert.Equal(expected, ClusterCheckEvaluator.Evaluate(check, tagged, PatroniQuery.Empty).Status);
    }

    [Theory]
    [InlineData("?lag=16MB", 16L * 1024 * 1024, 200)]
    [InlineData("?lag=16MB", 16L * 1024 * 1024 + 1, 503)]
    [InlineData("?lag=1kB", 1024L, 200)]
    [InlineData("?lag=1kB", 1025L, 503)]
    [InlineData("?lag=1000", 1000L, 200)]
    [InlineData("?lag=1000", 1001L, 503)]
    [InlineData("?lag=1GB", 1024L * 1024 * 1024 + 1, 503)]
    [InlineData("?lag=1TB", 1024L * 1024 * 1024 * 1024, 200)]
    [InlineData("?lag=nonsense", 1L << 50, 200)] // Patroni: unreadable means no limit
    [InlineData("", 1L << 50, 200)]
    public void Evaluate_ReplicaWithLag_ComparedInBytes(string query, long lag, int expected)
    {
        var lagging = Async with { LagBytes = lag };

        Assert.Equal(expected, ClusterCheckEvaluator.Evaluate("replica", lagging, PatroniQuery.Parse(query)).Status);
        Assert.Equal(expected, ClusterCheckEvaluator.Evaluate("async", lagging, PatroniQuery.Parse(query)).Status);
    }

    [Fact]
    public void Evaluate_UnknownLagWithLimit_503()
    {
        var unknown = Async with { LagBytes = null };

        Assert.Equal(503, ClusterCheckEvaluator.Evaluate("replica", unknown, PatroniQuery.Parse("?lag=1MB")).Status);
        Assert.Equal(200, ClusterCheckEvaluator.Evaluate("replica", unknown, PatroniQuery.Empty).Status);
    }

    [Fact]
    public void Evaluate_LeaderIgnoresLag()
    {
        Assert.Equal(200, ClusterCheckEvaluator.Evaluate("read-only", Leader, PatroniQuery.Parse("?lag=0")).Status);
    }

    [Theory]
    [InlineData("?tag_dc=east", 200)]
    [InlineData("?tag_dc=west", 503)]
    [InlineData("?tag_DC=east", 503)] // tag names are case-sensitive
    [InlineData("?tag_rack=1", 503)] // not set on the member
    [InlineData("?tag_nofailover=true", 200)] // booleans are compared as Python's lower-cased str()
    [InlineData("?tag_dc=east&tag_nofailover=false", 503)]
    [InlineData("?tag_dc=", 200)] // blank values are dropped, as parse_qs does
    public void Evaluate_ReplicaTagFilters(string query, int expected)
    {
        var tagged = Async with { Tags = new Dictionary<string, string> { ["dc"] = "east", ["nofailover"] = "true" } };

        Assert.Equal(expected, ClusterCheckEvaluator.Evaluate("replica", tagged, PatroniQuery.Parse(query)).Status);
    }

    [Theory]
    [InlineData("primary")]
    [InlineData("leader")]
    public void Evaluate_LeaderChecksIgnoreTags(string check)
    {
        Assert.Equal(200, ClusterCheckEvaluator.Evaluate(check, Leader, PatroniQuery.Parse("?tag_dc=nowhere")).Status);
    }

    [Fact]
    public void Evaluate_ReadOnlyOnLeader_TagsStillApply()
    {
        Assert.Equal(503, ClusterCheckEvaluator.Evaluate("read-only", Leader, PatroniQuery.Parse("?tag_dc=nowhere")).Status);
    }

    [Theory]
    [InlineData("?replication_state=streaming", 200)]
    [InlineData("?replication_state=in%20archive%20recovery", 503)]
    public void Evaluate_ReplicationState_MatchesMemberState(string query, int expected)
    {
        Assert.Equal(expected, ClusterCheckEvaluator.Evaluate("replica", Sync, PatroniQuery.Parse(query)).Status);
    }

    [Theory]
    [InlineData("streaming", 0L, "", 200)]
    [InlineData("running", 0L, "", 200)]
    [InlineData("in archive recovery", 0L, "", 503)]
    [InlineData("stopped", 0L, "", 503)]
    [InlineData("streaming", 2L * 1024 * 1024, "", 503)] // default maximum_lag_on_failover: 1 MB
    [InlineData("streaming", 2L * 1024 * 1024, "?lag=4MB", 200)]
    public void Evaluate_ReadinessOfReplica(string state, long lag, string query, int expected)
    {
        var replica = Async with { State = state, LagBytes = lag };

        Assert.Equal(expected, ClusterCheckEvaluator.Evaluate("readiness", replica, PatroniQuery.Parse(query)).Status);
    }

    private static PatroniMember Member(string name, MemberRole role, string state, long? lag) =>
        new(name, role, state, "127.0.0.1", 5432, $"http://127.0.0.1:8008/patroni", Timeline: 1, lag, new Dictionary<string, string>());
}
