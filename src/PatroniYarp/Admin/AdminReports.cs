using System.Text.Json.Serialization;

namespace PatroniYarp.Admin;

// The admin API's JSON shapes (snake_case through AdminJsonContext). Part of the contract with operators' scripts:
// extend, do not rename.

/// <summary>GET /update_clusters: which clusters were polled successfully and which failed, and why.</summary>
internal sealed record UpdateClustersReport(IReadOnlyList<string> Updated, IReadOnlyDictionary<string, string> Failed);

/// <summary>GET /clusters: every configured cluster by name.</summary>
internal sealed record ClustersReport(IReadOnlyDictionary<string, ClusterReport> Clusters);

/// <param name="Stale">True when the last poll failed on every host (or none succeeded yet): members are the last known.</param>
/// <param name="Source">The Patroni API that gave the current members.</param>
internal sealed record ClusterReport(
    bool Stale,
    DateTimeOffset? LastGoodPoll,
    string? LastError,
    DateTimeOffset? LastErrorAt,
    string? Source,
    bool Paused,
    IReadOnlyList<MemberReport> Members,
    IReadOnlyDictionary<string, PortReport> Ports);

/// <param name="Lag">Replication lag in bytes; null when Patroni reports none or "unknown".</param>
internal sealed record MemberReport(
    string Name,
    string Role,
    string State,
    long? Lag,
    string Host,
    int Port,
    long? Timeline,
    IReadOnlyDictionary<string, string> Tags);

/// <param name="YarpCluster">Id of the YARP cluster that carries the port's destinations.</param>
/// <param name="Destinations">The port's destinations as YARP holds them now (eligible members, resolved).</param>
internal sealed record PortReport(
    string Listen,
    IReadOnlyList<string> Roles,
    int? HostPort,
    long? MaxLagInBytes,
    int Preconnect,
    string YarpCluster,
    IReadOnlyList<DestinationReport> Destinations);

/// <param name="Health">Passive health as the TCP side reports it: unknown, healthy or unhealthy.</param>
/// <param name="Available">Whether new sessions may go there (not passive-unhealthy).</param>
/// <param name="OpenSessions">TCP sessions this process holds open to the destination through this port.</param>
/// <param name="Spares">Connections open to it ahead of the next client (the port's preconnect).</param>
internal sealed record DestinationReport(string Id, string Member, string Address, string Health, bool Available, int OpenSessions,
    int Spares);

/// <summary>GET /connections: every open TCP session, oldest first.</summary>
internal sealed record ConnectionsReport(int Count, IReadOnlyList<ConnectionReport> Connections);

/// <param name="Port">The YARP cluster id of the port ("cluster/port").</param>
/// <param name="AgeSeconds">Seconds since the client connected.</param>
internal sealed record ConnectionReport(
    long Id,
    string Port,
    string Member,
    string? Client,
    string? Backend,
    DateTimeOffset StartedAt,
    double AgeSeconds,
    long BytesIn,
    long BytesOut);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true)]
[JsonSerializable(typeof(UpdateClustersReport))]
[JsonSerializable(typeof(ClustersReport))]
[JsonSerializable(typeof(ConnectionsReport))]
internal sealed partial class AdminJsonContext : JsonSerializerContext;
