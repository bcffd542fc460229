namespace PatroniYarp.Patroni;

/// <summary>
/// What one successful /cluster poll said about a cluster. Immutable; replaced whole by a newer poll.
/// </summary>
/// <param name="Sequence">Order in which the poll that produced it was started; a lower one never replaces a higher.</param>
/// <param name="Source">The Patroni API base URL that answered.</param>
internal sealed record ClusterSnapshot(
    long Sequence,
    IReadOnlyList<PatroniMember> Members,
    DateTimeOffset PolledAt,
    string Source,
    bool Paused)
{
    /// <summary>
    /// True once the leader's own Patroni API confirmed it is a running primary (it holds the leader lock and its
    /// PostgreSQL is out of recovery). /cluster names a new leader as soon as it takes the leader key, about 100 ms
    /// before its promotion ends: until then it would refuse writes. Carried over by <see cref="ClusterStateStore"/> to
    /// the next snapshots that name the same leader.
    /// </summary>
    public bool LeaderConfirmed { get; init; }

    /// <summary>
    /// The sequence of the first snapshot of the run of snapshots naming the current leader (set by the store): a
    /// confirmation asked for one run must not confirm a later one of the same member.
    /// </summary>
    public long LeaderSince { get; init; }

    /// <summary>The leader once confirmed (<see cref="LeaderConfirmed"/>), else null: the only member a leader port may use.</summary>
    public PatroniMember? ConfirmedLeader => LeaderConfirmed ? Leader : null;

    /// <summary>The one leader, or null when there is none or, ambiguously, more than one (never guess a writer).</summary>
    public PatroniMember? Leader
    {
        get
        {
            PatroniMember? leader = null;
            foreach (var member in Members)
            {
                if (member.IsLeader)
                {
                    if (leader is not null)
                    {
                        return null;
                    }
                    leader = member;
                }
            }
            return leader;
        }
    }
}

/// <summary>
/// A cluster as PatroniYarp knows it: the last good snapshot plus how fresh it is.
/// When every Patroni host fails, the last snapshot stays in use and the state is marked stale.
/// </summary>
internal sealed record ClusterState(
    string Name,
    ClusterSnapshot? Snapshot,
    DateTimeOffset? LastGoodPoll,
    bool IsStale,
    string? LastError,
    DateTimeOffset? LastErrorAt)
{
    public static ClusterState Empty(string name) => new(name, null, null, IsStale: true, null, null);
}
