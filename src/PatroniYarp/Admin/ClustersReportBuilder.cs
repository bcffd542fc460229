using PatroniYarp.Configuration;
using PatroniYarp.Patroni;
using PatroniYarp.Routing;
using PatroniYarp.Tcp;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Model;
using ClusterState = PatroniYarp.Patroni.ClusterState;

namespace PatroniYarp.Admin;

/// <summary>
/// Assembles GET /clusters from the configuration, the Patroni state store and YARP's live state. Destinations are
/// read back from YARP (not recomputed) so the report shows what the proxy actually routes to.
/// </summary>
internal static class ClustersReportBuilder
{
    public static ClustersReport Build(
        ProxyOptions options,
        IReadOnlyDictionary<string, ClusterState> states,
        IProxyStateLookup proxyState,
        SessionRegistry sessions,
        SpareBackends spares)
    {
        var clusters = new SortedDictionary<string, ClusterReport>(StringComparer.Ordinal);
        foreach (var (name, cluster) in options.Clusters)
        {
            var state = states.TryGetValue(name, out var known) ? known : ClusterState.Empty(name);
            var ports = new SortedDictionary<string, PortReport>(StringComparer.Ordinal);
            foreach (var (portName, port) in cluster.Ports)
            {
                var yarpCluster = ProxyClusterIds.ForPort(name, portName);
                ports[portName] = new PortReport(
                    port.Listen,
                    port.Roles,
                    port.HostPort,
                    port.MaxLagInBytes,
                    port.Preconnect,
                    yarpCluster,
                    ReadDestinations(proxyState, sessions, spares, yarpCluster));
            }
            clusters[name] = new ClusterReport(
                state.IsStale,
                state.LastGoodPoll,
                state.LastError,
                state.LastErrorAt,
                state.Snapshot?.Source,
                state.Snapshot?.Paused ?? false,
                state.Snapshot?.Members.Select(ToReport).ToList() ?? [],
                ports);
        }
        return new ClustersReport(clusters);
    }

    private static MemberReport ToReport(PatroniMember member) => new(
        member.Name,
        PatroniProxyConfigProvider.RoleName(member.Role),
        member.State,
        member.LagBytes,
        member.Host,
        member.Port,
        member.Timeline,
        member.Tags);

    private static List<DestinationReport> ReadDestinations(IProxyStateLookup proxyState, SessionRegistry sessions,
        SpareBackends spares, string yarpCluster)
    {
        // Not there until YARP has loaded the configuration that introduced the port.
        if (!proxyState.TryGetCluster(yarpCluster, out var cluster))
        {
            return [];
        }
        var available = cluster.DestinationsState.AvailableDestinations.ToHashSet();
        return cluster.Destinations.Values
            .OrderBy(d => d.DestinationId, StringComparer.Ordinal)
            .Select(destination => ToReport(
                destination,
                available.Contains(destination),
                sessions.GetOpenSessions(yarpCluster, destination.DestinationId),
                spares.Ready(yarpCluster, destination.DestinationId)))
            .ToList();
    }

    private static DestinationReport ToReport(DestinationState destination, bool available, int openSessions, int spares)
    {
        var config = destination.Model.Config;
        var member = config.Metadata?.GetValueOrDefault(ProxyClusterIds.Metadata.Member) ?? destination.DestinationId;
        return new DestinationReport(
            destination.DestinationId,
            member,
            config.Address,
            destination.Health.Passive.ToString().ToLowerInvariant(),
            available,
            openSessions,
            spares);
    }
}
