using System.Collections.Immutable;
using Microsoft.Extensions.Primitives;

namespace PatroniYarp.Patroni;

/// <summary>
/// The single source of truth for what PatroniYarp knows about each cluster. The whole map is an immutable value
/// swapped atomically; a poll that started earlier never overwrites the result of one that started later
/// (as Npgsql's ClusterStateCache does). Readers take <see cref="Clusters"/> once and work on that value.
/// </summary>
internal sealed class ClusterStateStore
{
    private ImmutableDictionary<string, ClusterState> _clusters = ImmutableDictionary<string, ClusterState>.Empty;
    private CancellationTokenSource _changed = new();

    public ImmutableDictionary<string, ClusterState> Clusters => Volatile.Read(ref _clusters);

    /// <summary>Fires once on the next change of any cluster; ask again for the one after.</summary>
    public IChangeToken GetChangeToken() => new CancellationChangeToken(Volatile.Read(ref _changed).Token);

    /// <summary>Keeps exactly the configured clusters: new ones start empty and stale, removed ones are dropped.</summary>
    public void SetClusters(IEnumerable<string> names)
    {
        var wanted = names.ToHashSet(StringComparer.Ordinal);
        Update(current =>
        {
            var next = current.RemoveRange(current.Keys.Where(k => !wanted.Contains(k)));
            foreach (var name in wanted)
            {
                if (!next.ContainsKey(name))
                {
                    next = next.Add(name, ClusterState.Empty(name));
                }
            }
            return next;
        });
    }

    /// <summary>
    /// Stores a good poll's snapshot unless a later-started poll already stored one. True when stored. When the stored
    /// snapshot names the same leader, its confirmation carries over (atomically: a confirmation landing meanwhile is
    /// not lost, so a confirmed leader never flaps out of its ports).
    /// </summary>
    public bool TryApply(string cluster, ClusterSnapshot snapshot)
    {
        var applied = false;
        Update(current =>
        {
            applied = false;
            if (!current.TryGetValue(cluster, out var state) || state.Snapshot?.Sequence >= snapshot.Sequence)
            {
                return current;
            }
            applied = true;
            var previous = state.Snapshot;
            var sameLeader = snapshot.Leader?.Name is { } leader && previous?.Leader?.Name == leader;
            return current.SetItem(cluster, state with
            {
                Snapshot = snapshot with
                {
                    LeaderSince = sameLeader ? previous!.LeaderSince : snapshot.Sequence,
                    LeaderConfirmed = snapshot.LeaderConfirmed || (sameLeader && previous!.LeaderConfirmed),
                },
                LastGoodPoll = snapshot.PolledAt,
                IsStale = false,
                LastError = null,
                LastErrorAt = null,
            });
        });
        return applied;
    }

    /// <summary>
    /// Marks the leader confirmed, when the stored snapshot still names <paramref name="member"/> in the same run of
    /// snapshots (<see cref="ClusterSnapshot.LeaderSince"/>) the confirmation was asked for. True when it changed.
    /// </summary>
    public bool ConfirmLeader(string cluster, string member, long leaderSince)
    {
        var confirmed = false;
        Update(current =>
        {
            confirmed = false;
            if (!current.TryGetValue(cluster, out var state)
                || state.Snapshot is not { LeaderConfirmed: false } snapshot
                || snapshot.LeaderSince != leaderSince
                || snapshot.Leader?.Name != member)
            {
                return current;
            }
            confirmed = true;
            return current.SetItem(cluster, state with { Snapshot = snapshot with { LeaderConfirmed = true } });
        });
        return confirmed;
    }

    /// <summary>
    /// Records that a poll failed on every host: the last known members stay in use, marked stale.
    /// A failure of a poll older than the stored snapshot is ignored.
    /// </summary>
    public void ReportFailure(string cluster, long sequence, string error, DateTimeOffset at)
    {
        Update(current =>
        {
            if (!current.TryGetValue(cluster, out var state) || state.Snapshot?.Sequence > sequence)
            {
                return current;
            }
            return current.SetItem(cluster, state with { IsStale = true, LastError = error, LastErrorAt = at });
        });
    }

    private void Update(Func<ImmutableDictionary<string, ClusterState>, ImmutableDictionary<string, ClusterState>> change)
    {
        while (true)
        {
            var current = Volatile.Read(ref _clusters);
            var next = change(current);
            if (ReferenceEquals(next, current))
            {
                return;
            }
            if (ReferenceEquals(Interlocked.CompareExchange(ref _clusters, next, current), current))
            {
                break;
            }
        }
        // Not disposed: a reader may still register on the old token (it then fires at once), as in YARP's InMemoryConfigProvider.
        Interlocked.Exchange(ref _changed, new CancellationTokenSource()).Cancel();
    }
}
