using PatroniYarp.Patroni;

namespace PatroniYarp.HealthChecks;

/// <summary>The outcome of one cluster-mode check: Patroni's status code and, for people, why.</summary>
internal readonly record struct ClusterCheckResult(int Status, string Reason);

/// <summary>
/// Patroni's health-check rules (RestApiHandler.do_GET, do_GET_liveness and do_GET_readiness in patroni/api.py),
/// applied to one member as the cluster's /cluster answer describes it, so no call goes to that member.
/// What /cluster cannot say is decided the cautious way: an unknown lag counts as lagging when a limit is asked for.
/// </summary>
internal static class ClusterCheckEvaluator
{
    public const int Ok = 200;
    public const int Unavailable = 503;

    /// <summary>Patroni's maximum_lag_on_failover default, which /readiness uses when no ?lag= is given.</summary>
    public const long DefaultReadinessLag = 1024 * 1024;

    public static ClusterCheckResult Evaluate(string check, PatroniMember member, PatroniQuery query)
    {
        var holdsLeaderLock = member.Role is MemberRole.Leader or MemberRole.StandbyLeader;
        var isReplica = member.Role is MemberRole.Replica or MemberRole.SyncStandby or MemberRole.QuorumStandby;
        var isSync = member.Role == MemberRole.SyncStandby;
        var isQuorum = member.Role == MemberRole.QuorumStandby;

        // A standby cluster's leader is a standby_leader: it answers /standby-leader and /leader, never /primary.
        var primary = member.Role == MemberRole.Leader;
        var standbyLeader = member.Role == MemberRole.StandbyLeader;
        var replica = ReplicaStatus(member, isReplica, query);

        var (status, reason, ignoreTags) = check switch
        {
            "standby-leader" => (Code(standbyLeader), standbyLeader ? "standby leader" : "not the standby leader", true),
            "leader" => (Code(holdsLeaderLock), holdsLeaderLock ? "holds the leader lock" : "does not hold the leader lock", true),
            "primary" or "master" or "read-write" => (Code(primary), primary ? "primary" : "not the primary", true),
            "replica" => (replica.Status, replica.Reason, false),
            "read-only" => primary || standbyLeader ? (Ok, "leader, serves reads", false) : (replica.Status, replica.Reason, false),
            "health" => (Code(member.CanServe), $"PostgreSQL is {member.State}", false),
            "sync" or "synchronous" => isSync ? (replica.Status, replica.Reason, false) : (Unavailable, "not a synchronous standby", false),
            "quorum" => isQuorum ? (replica.Status, replica.Reason, false) : (Unavailable, "not a quorum standby", false),
            "async" or "asynchronous" => !isSync && !isQuorum ? (replica.Status, replica.Reason, false) : (Unavailable, "a synchronous or quorum standby", false),
            "read-only-sync" => primary || standbyLeader ? (Ok, "leader, serves reads", false)
                : isSync ? (replica.Status, replica.Reason, false) : (Unavailable, "neither leader nor synchronous standby", false),
            "read-only-quorum" => primary || standbyLeader ? (Ok, "leader, serves reads", false)
                : isQuorum ? (replica.Status, replica.Reason, false) : (Unavailable, "neither leader nor quorum standby", false),
            // A member listed in /cluster has a live member key in the DCS: its Patroni ran its loop within the ttl.
            "liveness" => (Ok, "member key present in the DCS", true),
            "readiness" => Readiness(member, holdsLeaderLock, query),
            _ => (Unavailable, $"unknown check '{check}'", true),
        };

        if (!ignoreTags && status == Ok && TagMismatch(member, query) is { } mismatch)
        {
            return new ClusterCheckResult(Unavailable, mismatch);
        }
        return new ClusterCheckResult(status, reason);
    }

    private static int Code(bool ok) => ok ? Ok : Unavailable;

    /// <summary>Patroni's replica_status_code: a running standby, not noloadbalance, within ?lag=, in ?replication_state=.</summary>
    private static ClusterCheckResult ReplicaStatus(PatroniMember member, bool isReplica, PatroniQuery query)
    {
        if (!isReplica)
        {
            return new(Unavailable, "not a replica");
        }
        if (!member.CanServe)
        {
            return new(Unavailable, $"PostgreSQL is {member.State}");
        }
        if (member.NoLoadBalance)
        {
            return new(Unavailable, "tagged noloadbalance");
        }
        if (PatroniLag.ParseBytes(query["lag"]) is { } maxLag && IsLagging(member, maxLag))
        {
            return new(Unavailable, $"lag {member.LagBytes?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "unknown"} exceeds {maxLag} bytes");
        }
        if (query["replication_state"] is { } wanted && wanted != member.State)
        {
            return new(Unavailable, $"replication state is {member.State}, not {wanted}");
        }
        return new(Ok, "replica");
    }

    private static bool IsLagging(PatroniMember member, long maxLag) => member.LagBytes is not { } lag || lag > maxLag;

    private static (int, string, bool) Readiness(PatroniMember member, bool holdsLeaderLock, PatroniQuery query)
    {
        if (holdsLeaderLock)
        {
            return (Ok, "holds the leader lock", true);
        }
        if (!member.CanServe || member.State == "in archive recovery")
        {
            return (Unavailable, $"PostgreSQL is {member.State}, not streaming", true);
        }
        var maxLag = PatroniLag.ParseBytes(query["lag"]) ?? DefaultReadinessLag;
        return IsLagging(member, maxLag)
            ? (Unavailable, $"lag {member.LagBytes?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "unknown"} exceeds {maxLag} bytes", true)
            : (Ok, "streaming within lag", true);
    }

    /// <summary>Patroni's ?tag_key=value filter: every tag asked for must be set on the member, to that text.</summary>
    private static string? TagMismatch(PatroniMember member, PatroniQuery query)
    {
        foreach (var (name, wanted) in query.Pairs)
        {
            if (!name.StartsWith("tag_", StringComparison.Ordinal))
            {
                continue;
            }
            var tag = name["tag_".Length..];
            if (!member.Tags.TryGetValue(tag, out var actual))
            {
                return $"tag {tag} is not set";
            }
            if (actual != wanted)
            {
                return $"tag {tag} is {actual}, not {wanted}";
            }
        }
        return null;
    }
}
