using System.Globalization;
using Microsoft.Extensions.Options;
using PatroniYarp.Configuration;
using PatroniYarp.Patroni;
using PatroniYarp.Routing;
using PatroniYarp.Tcp;
using Yarp.ReverseProxy.Configuration;

namespace PatroniYarp.Diagnostics;

/// <summary>
/// Turns each applied routing change into one log line per Patroni cluster — what changed (leader, members joining or
/// leaving a port and why) and how many sessions were closed — and counts the closed sessions by reason. Compares the
/// ports' destinations with those of the previous change, and the cluster snapshots with the previous ones.
/// </summary>
internal sealed partial class TopologyChangeLog(
    ClusterStateStore store,
    IOptionsMonitor<ProxyOptions> options,
    ProxyMetrics metrics,
    ILogger<TopologyChangeLog> logger)
{
    private readonly Lock _gate = new();
    private Dictionary<string, IReadOnlySet<string>> _routing = new(StringComparer.Ordinal);
    private IReadOnlyDictionary<string, ClusterState> _clusters = new Dictionary<string, ClusterState>();

    /// <param name="configs">The configuration YARP just applied.</param>
    /// <param name="closed">The sessions closed because of it (<see cref="SessionRegistry.CloseIneligible"/>).</param>
    public void Applied(IReadOnlyList<IProxyConfig> configs, IReadOnlyList<ClosedSessions> closed)
    {
        var proxy = options.CurrentValue;
        var clusters = store.Clusters;
        var routing = RoutingOf(configs);
        lock (_gate)
        {
            foreach (var (name, cluster) in proxy.Clusters.OrderBy(static c => c.Key, StringComparer.Ordinal))
            {
                var before = _clusters.GetValueOrDefault(name)?.Snapshot;
                var after = clusters.GetValueOrDefault(name)?.Snapshot;
                var changes = new List<string>();
                if (before is not null && after is not null && LeaderOf(before) != LeaderOf(after))
                {
                    changes.Add($"leader {LeaderOf(before) ?? "(none)"} → {LeaderOf(after) ?? "(none)"}");
                }

                var closedCount = 0;
                foreach (var (portName, port) in cluster.Ports.OrderBy(static p => p.Key, StringComparer.Ordinal))
                {
                    var id = ProxyClusterIds.ForPort(name, portName);
                    var now = routing.GetValueOrDefault(id) ?? new HashSet<string>();
                    if (!_routing.TryGetValue(id, out var was))
                    {
                        changes.Add($"port {portName} → {(now.Count == 0 ? "no member" : string.Join(", ", now.Order(StringComparer.Ordinal)))}");
                        was = now;
                    }
                    foreach (var member in was.Except(now).Order(StringComparer.Ordinal))
                    {
                        changes.Add($"{member} left {portName}: {WhyLeft(member, port, before, after).Detail}");
                    }
                    foreach (var member in now.Except(was).Order(StringComparer.Ordinal))
                    {
                        changes.Add($"{member} joined {portName}");
                    }
                    foreach (var entry in closed.Where(c => c.Port == id))
                    {
                        var reason = entry.Reason == SessionRegistry.ReasonPortRemoved
                            ? ProxyMetrics.Reasons.Reload
                            : WhyLeft(entry.Member, port, before, after).Reason;
                        metrics.SessionsClosed(name, portName, entry.Member, reason, entry.Count);
                        closedCount += entry.Count;
                    }
                }

                if (changes.Count > 0 || closedCount > 0)
                {
                    Log.TopologyChanged(logger, name, changes.Count > 0 ? string.Join("; ", changes) : "routing unchanged", closedCount);
                }
            }

            // Sessions of ports that are no longer configured were closed by the reload that removed them.
            foreach (var entry in closed.Where(c => !routing.ContainsKey(c.Port)))
            {
                var (cluster, port) = SplitPortId(entry.Port);
                metrics.SessionsClosed(cluster, port, entry.Member, ProxyMetrics.Reasons.Reload, entry.Count);
            }

            _routing = routing;
            _clusters = clusters;
        }
    }

    /// <summary>Why <paramref name="member"/> is no longer routed to by <paramref name="port"/>: a metric reason and words for people.</summary>
    internal static (string Reason, string Detail) WhyLeft(string member, PortOptions port, ClusterSnapshot? before, ClusterSnapshot? after)
    {
        var now = after?.Members.FirstOrDefault(m => m.Name == member);
        if (now is null)
        {
            return (ProxyMetrics.Reasons.MemberRemoved, "no longer in the cluster");
        }
        // A role change comes first: a demoted leader is briefly stopped too, but it left because it stepped down.
        var role = PatroniProxyConfigProvider.RoleName(now.Role);
        if (!PortRolesExtensions.Parse(port.Roles).Includes(now.Role) || (now.IsLeader && !ReferenceEquals(now, after!.Leader)))
        {
            var was = before?.Members.FirstOrDefault(m => m.Name == member);
            return was is not null && was.Role != now.Role
                ? (ProxyMetrics.Reasons.RoleChange, $"{PatroniProxyConfigProvider.RoleName(was.Role)} → {role}")
                : (ProxyMetrics.Reasons.Reload, $"role {role} not wanted by the port");
        }
        if (!now.CanServe)
        {
            return (ProxyMetrics.Reasons.StateChange, $"state {now.State}");
        }
        if (now.NoLoadBalance && !now.IsLeader)
        {
            return (ProxyMetrics.Reasons.NoLoadBalance, "tagged noloadbalance");
        }
        if (port.MaxLagInBytes is { } limit && !now.IsLeader && !(now.LagBytes <= limit))
        {
            return (ProxyMetrics.Reasons.Lag, now.LagBytes is { } lag
                ? $"lag {FormatBytes(lag)} > {FormatBytes(limit)}"
                : $"lag unknown (limit {FormatBytes(limit)})");
        }
        return (ProxyMetrics.Reasons.Reload, "port configuration changed");
    }

    internal static string FormatBytes(long bytes)
    {
        string[] units = ["B", "kB", "MB", "GB", "TB"];
        double value = bytes;
        var unit = 0;
        while (Math.Abs(value) >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }
        return unit == 0
            ? string.Create(CultureInfo.InvariantCulture, $"{bytes} B")
            : string.Create(CultureInfo.InvariantCulture, $"{value:0.#} {units[unit]}");
    }

    private static string? LeaderOf(ClusterSnapshot snapshot) =>
        snapshot.Members.SingleOrDefault(static m => m.Role is MemberRole.Leader or MemberRole.StandbyLeader)?.Name;

    /// <summary>Members each port routes to, by YARP cluster id.</summary>
    private static Dictionary<string, IReadOnlySet<string>> RoutingOf(IReadOnlyList<IProxyConfig> configs)
    {
        var routing = new Dictionary<string, IReadOnlySet<string>>(StringComparer.Ordinal);
        foreach (var cluster in configs.SelectMany(static c => c.Clusters))
        {
            routing[cluster.ClusterId] = (cluster.Destinations ?? new Dictionary<string, DestinationConfig>())
                .Select(static d => d.Value.Metadata?.GetValueOrDefault(ProxyClusterIds.Metadata.Member) is { Length: > 0 } member ? member : d.Key)
                .ToHashSet(StringComparer.Ordinal);
        }
        return routing;
    }

    private static (string Cluster, string Port) SplitPortId(string id)
    {
        var slash = id.IndexOf('/', StringComparison.Ordinal);
        return slash < 0 ? (id, "") : (id[..slash], id[(slash + 1)..]);
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Cluster '{Cluster}': {Changes}; {Closed} session(s) closed.")]
        public static partial void TopologyChanged(ILogger logger, string cluster, string changes, int closed);
    }
}
