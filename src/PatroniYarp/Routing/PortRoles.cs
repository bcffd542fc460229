using PatroniYarp.Patroni;

namespace PatroniYarp.Routing;

/// <summary>The member roles a proxy port routes to.</summary>
[Flags]
internal enum PortRoles
{
    None = 0,
    Leader = 1,
    StandbyLeader = 2,
    /// <summary>sync_standby and quorum_standby.</summary>
    Sync = 4,
    /// <summary>Plain replicas.</summary>
    Async = 8,
    Any = Leader | StandbyLeader | Sync | Async,
}

internal static class PortRolesExtensions
{
    /// <summary>
    /// Parses one role name from the configuration, case-insensitively: leader, sync, async, any, standby_leader,
    /// and the aliases master/primary (leader) and replica (sync + async).
    /// </summary>
    public static bool TryParse(string? text, out PortRoles roles)
    {
        roles = text?.Trim().ToLowerInvariant() switch
        {
            "leader" or "master" or "primary" => PortRoles.Leader,
            "standby_leader" => PortRoles.StandbyLeader,
            "sync" => PortRoles.Sync,
            "async" => PortRoles.Async,
            "replica" => PortRoles.Sync | PortRoles.Async,
            "any" => PortRoles.Any,
            _ => PortRoles.None,
        };
        return roles != PortRoles.None;
    }

    /// <summary>Combines a port's role list; unknown names are left to the validator, which reports them.</summary>
    public static PortRoles Parse(IEnumerable<string> names)
    {
        var roles = PortRoles.None;
        foreach (var name in names)
        {
            if (TryParse(name, out var one))
            {
                roles |= one;
            }
        }
        return roles;
    }

    public static bool Includes(this PortRoles roles, MemberRole role) => role switch
    {
        MemberRole.Leader => roles.HasFlag(PortRoles.Leader),
        MemberRole.StandbyLeader => roles.HasFlag(PortRoles.StandbyLeader),
        MemberRole.SyncStandby or MemberRole.QuorumStandby => roles.HasFlag(PortRoles.Sync),
        MemberRole.Replica => roles.HasFlag(PortRoles.Async),
        _ => false,
    };
}
