namespace PatroniYarp.Patroni;

/// <summary>A member's role as Patroni reports it in /cluster.</summary>
internal enum MemberRole
{
    Unknown,
    Leader,
    StandbyLeader,
    SyncStandby,
    QuorumStandby,
    Replica,
}

/// <summary>One member of a Patroni cluster, as one /cluster answer described it.</summary>
/// <param name="Name">Patroni member name, unique in the cluster; the YARP destination id.</param>
/// <param name="Role">Parsed role; <see cref="MemberRole.Unknown"/> for roles this version does not know.</param>
/// <param name="State">Patroni's state text: running, streaming, in archive recovery, stopped, …</param>
/// <param name="LagBytes">Replication lag in bytes; null when Patroni reports none or "unknown".</param>
/// <param name="Tags">Member tags with values as text (Patroni may send booleans or strings).</param>
internal sealed record PatroniMember(
    string Name,
    MemberRole Role,
    string State,
    string Host,
    int Port,
    string? ApiUrl,
    long? Timeline,
    long? LagBytes,
    IReadOnlyDictionary<string, string> Tags)
{
    /// <summary>States in which PostgreSQL accepts sessions (Patroni ≥ 3.0.4 reports replicas as streaming).</summary>
    public bool CanServe => State is "running" or "streaming" or "in archive recovery";

    public bool IsLeader => Role == MemberRole.Leader;

    public bool NoLoadBalance => Tags.TryGetValue("noloadbalance", out var value) && IsTrue(value);

    private static bool IsTrue(string value) =>
        value.Equals("true", StringComparison.OrdinalIgnoreCase) || value is "1" or "yes" or "on";
}
