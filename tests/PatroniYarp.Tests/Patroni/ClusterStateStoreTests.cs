using PatroniYarp.Patroni;

namespace PatroniYarp.Tests.Patroni;

public sealed class ClusterStateStoreTests
{
    private static readonly DateTimeOffset T0 = new(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static ClusterSnapshot Snapshot(long sequence, string leader) => new(
        sequence,
        [new PatroniMember(leader, MemberRole.Leader, "running", "127.0.0.1", 5432, null, 1, null, new Dictionary<string, string>())],
        T0.AddSeconds(sequence),
        "http://127.0.0.1:8008",
        Paused: false);

    [Fact]
    public void TryApply_OlderSequenceAfterNewer_IsRefused()
    {
        var store = new ClusterStateStore();
        store.SetClusters(["demo"]);

        Assert.True(store.TryApply("demo", Snapshot(2, "new")));
        Assert.False(store.TryApply("demo", Snapshot(1, "old")));

        Assert.Equal("new", store.Clusters["demo"].Snapshot?.Leader?.Name);
    }

    [Fact]
    public void TryApply_SameLeaderAsConfirmedOne_StaysConfirmed()
    {
        var store = new ClusterStateStore();
        store.SetClusters(["demo"]);
        store.TryApply("demo", Snapshot(1, "pg1"));
        Assert.True(store.ConfirmLeader("demo", "pg1", leaderSince: 1));

        store.TryApply("demo", Snapshot(2, "pg1"));

        var snapshot = store.Clusters["demo"].Snapshot!;
        Assert.True(snapshot.LeaderConfirmed);
        Assert.Equal(1, snapshot.LeaderSince);
        Assert.Equal("pg1", snapshot.ConfirmedLeader?.Name);
    }

    [Fact]
    public void TryApply_OtherLeader_IsUnconfirmedUntilItsOwnConfirmation()
    {
        var store = new ClusterStateStore();
        store.SetClusters(["demo"]);
        store.TryApply("demo", Snapshot(1, "pg1"));
        store.ConfirmLeader("demo", "pg1", leaderSince: 1);

        store.TryApply("demo", Snapshot(2, "pg2"));

        var snapshot = store.Clusters["demo"].Snapshot!;
        Assert.False(snapshot.LeaderConfirmed);
        Assert.Null(snapshot.ConfirmedLeader);
        Assert.Equal(2, snapshot.LeaderSince);
        Assert.False(store.ConfirmLeader("demo", "pg1", leaderSince: 1));
        Assert.True(store.ConfirmLeader("demo", "pg2", leaderSince: 2));
    }

    [Fact]
    public void ConfirmLeader_AskedForAnEarlierRunOfTheSameLeader_IsRefused()
    {
        // pg1 led, lost the lead and took it back: an answer about its first run says nothing about the second.
        var store = new ClusterStateStore();
        store.SetClusters(["demo"]);
        store.TryApply("demo", Snapshot(1, "pg1"));
        store.TryApply("demo", Snapshot(2, "pg2"));
        store.TryApply("demo", Snapshot(3, "pg1"));

        Assert.False(store.ConfirmLeader("demo", "pg1", leaderSince: 1));
        Assert.Null(store.Clusters["demo"].Snapshot!.ConfirmedLeader);
        Assert.True(store.ConfirmLeader("demo", "pg1", leaderSince: 3));
    }

    [Fact]
    public void ReportFailure_AfterGoodPoll_KeepsMembersAndMarksStale()
    {
        var store = new ClusterStateStore();
        store.SetClusters(["demo"]);
        store.TryApply("demo", Snapshot(1, "pg1"));

        store.ReportFailure("demo", 2, "every host failed", T0.AddMinutes(1));

        var state = store.Clusters["demo"];
        Assert.True(state.IsStale);
        Assert.Equal("pg1", state.Snapshot?.Leader?.Name);
        Assert.Equal(T0.AddSeconds(1), state.LastGoodPoll);
        Assert.Equal("every host failed", state.LastError);
    }

    [Fact]
    public void ReportFailure_OfPollOlderThanSnapshot_IsIgnored()
    {
        var store = new ClusterStateStore();
        store.SetClusters(["demo"]);
        store.TryApply("demo", Snapshot(5, "pg1"));

        store.ReportFailure("demo", 4, "slow old poll failed", T0.AddMinutes(1));

        Assert.False(store.Clusters["demo"].IsStale);
    }

    [Fact]
    public void TryApply_UnknownCluster_IsRefused()
    {
        var store = new ClusterStateStore();

        Assert.False(store.TryApply("removed", Snapshot(1, "pg1")));
    }
}
