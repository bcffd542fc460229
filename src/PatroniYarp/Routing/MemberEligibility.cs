using PatroniYarp.Configuration;
using PatroniYarp.Patroni;

namespace PatroniYarp.Routing;

/// <summary>Which Patroni members a configured proxy port may send sessions to.</summary>
internal static class MemberEligibility
{
    /// <summary>The members of <paramref name="snapshot"/> eligible for <paramref name="port"/>, in snapshot order.</summary>
    public static IEnumerable<PatroniMember> EligibleMembers(ClusterSnapshot snapshot, PortOptions port)
    {
        var roles = PortRolesExtensions.Parse(port.Roles);
        // Computed once: ClusterSnapshot.Leader walks the member list.
        var leader = snapshot.Leader;
        return snapshot.Members.Where(member => IsEligible(member, leader, snapshot.LeaderConfirmed, roles, port.MaxLagInBytes));
    }

    /// <param name="leader">The snapshot's one leader (<see cref="ClusterSnapshot.Leader"/>); null when none or ambiguous.</param>
    /// <param name="leaderConfirmed">Whether its own Patroni API confirmed it (<see cref="ClusterSnapshot.LeaderConfirmed"/>).</param>
    public static bool IsEligible(PatroniMember member, PatroniMember? leader, bool leaderConfirmed, PortRoles roles,
        long? maxLagInBytes)
    {
        if (!member.CanServe || !roles.Includes(member.Role))
        {
            return false;
        }

        // A member calling itself leader is trusted only when it is the snapshot's one leader: with two leaders
        // (split brain, a stale answer) neither gets writes.
        var isTheLeader = member.IsLeader && ReferenceEquals(member, leader);
        if (member.IsLeader && !isTheLeader)
        {
            return false;
        }

        // A leader not confirmed yet may still be in recovery: never on a port that only takes writers. A port that
        // takes replicas too keeps it (its clients cannot count on writes, and its sessions on the member being
        // promoted stay open).
        if (isTheLeader && !leaderConfirmed && (roles & (PortRoles.Sync | PortRoles.Async)) == 0)
        {
            return false;
        }

        // noloadbalance takes replicas out of rotation; the leader stays reachable on the ports that ask for it.
        if (member.NoLoadBalance && !isTheLeader)
        {
            return false;
        }

        // The leader has no lag; a replica whose lag Patroni cannot tell is not trusted under a limit.
        if (maxLagInBytes is { } limit && !isTheLeader)
        {
            return member.LagBytes is { } lag && lag <= limit;
        }

        return true;
    }

    /// <summary>The PostgreSQL port to connect to: the port's host_port override, else the member's own port.</summary>
    public static int TargetPort(PatroniMember member, PortOptions port) => port.HostPort ?? member.Port;
}
