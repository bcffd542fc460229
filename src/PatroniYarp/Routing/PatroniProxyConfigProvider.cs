using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;
using PatroniYarp.Configuration;
using PatroniYarp.Patroni;
using Yarp.ReverseProxy.Configuration;

namespace PatroniYarp.Routing;

/// <summary>
/// Publishes PatroniYarp's YARP configuration: one cluster per configured port whose destinations are the Patroni
/// members eligible for that port, plus what the <see cref="IProxyConfigContributor"/>s add. Rebuilt when a
/// cluster's state or the configuration changes; a new config (and change signal) only when something differs,
/// so YARP reloads only for real changes. A stale cluster keeps its last snapshot's members.
/// </summary>
internal sealed partial class PatroniProxyConfigProvider : IProxyConfigProvider, IDisposable
{
    /// <summary>
    /// Only healthy and unknown destinations are available. YARP's default, HealthyOrPanic, falls back to every
    /// destination when none is healthy: on a leader port that would send writes to replicas.
    /// </summary>
    public static readonly HealthCheckConfig HealthCheck = new()
    {
        AvailableDestinationsPolicy = "HealthyAndUnknown",
        Passive = new PassiveHealthCheckConfig { Enabled = true, Policy = TcpConnectFailurePolicy.PolicyName },
    };

    private readonly ClusterStateStore _store;
    private readonly IOptionsMonitor<ProxyOptions> _options;
    private readonly IProxyConfigContributor[] _contributors;
    private readonly ILogger<PatroniProxyConfigProvider> _logger;
    private readonly Lock _rebuildLock = new();
    private readonly IDisposable _storeSubscription;
    private readonly IDisposable? _optionsSubscription;
    private volatile Snapshot _config;

    public PatroniProxyConfigProvider(
        ClusterStateStore store,
        IOptionsMonitor<ProxyOptions> options,
        IEnumerable<IProxyConfigContributor> contributors,
        ILogger<PatroniProxyConfigProvider> logger)
    {
        _store = store;
        _options = options;
        _contributors = [.. contributors];
        _logger = logger;
        _config = Build();
        _storeSubscription = ChangeToken.OnChange(_store.GetChangeToken, Rebuild);
        _optionsSubscription = _options.OnChange((_, _) => Rebuild());
    }

    public IProxyConfig GetConfig() => _config;

    public void Dispose()
    {
        _storeSubscription.Dispose();
        _optionsSubscription?.Dispose();
    }

    /// <summary>The YARP cluster of one port: its eligible members, none while nothing is known of the cluster.</summary>
    public static ClusterConfig BuildPortCluster(string cluster, string port, PortOptions options, ClusterState? state)
    {
        var destinations = new Dictionary<string, DestinationConfig>(StringComparer.Ordinal);
        if (state?.Snapshot is { } snapshot)
        {
            foreach (var member in MemberEligibility.EligibleMembers(snapshot, options))
            {
                destinations[member.Name] = BuildDestination(member, MemberEligibility.TargetPort(member, options));
            }
        }
        return new ClusterConfig
        {
            ClusterId = ProxyClusterIds.ForPort(cluster, port),
            Destinations = destinations,
            HealthCheck = HealthCheck,
        };
    }

    private static DestinationConfig BuildDestination(PatroniMember member, int port)
    {
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [ProxyClusterIds.Metadata.Member] = member.Name,
            [ProxyClusterIds.Metadata.Role] = RoleName(member.Role),
            [ProxyClusterIds.Metadata.State] = member.State,
            [ProxyClusterIds.Metadata.Host] = member.Host,
            [ProxyClusterIds.Metadata.Port] = port.ToString(CultureInfo.InvariantCulture),
        };
        // Absent rather than invented: Patroni may not report them.
        if (member.LagBytes is { } lag)
        {
            metadata[ProxyClusterIds.Metadata.Lag] = lag.ToString(CultureInfo.InvariantCulture);
        }
        if (member.Timeline is { } timeline)
        {
            metadata[ProxyClusterIds.Metadata.Timeline] = timeline.ToString(CultureInfo.InvariantCulture);
        }
        if (member.ApiUrl is { } apiUrl)
        {
            metadata[ProxyClusterIds.Metadata.ApiUrl] = apiUrl;
        }
        return new DestinationConfig { Address = ProxyClusterIds.TcpAddress(member.Host, port), Metadata = metadata };
    }

    /// <summary>Patroni's own spelling of a role (leader, sync_standby, …).</summary>
    public static string RoleName(MemberRole role) => JsonNamingPolicy.SnakeCaseLower.ConvertName(role.ToString());

    private void Rebuild()
    {
        // Store and options callbacks may race: one rebuild at a time, each from the newest state.
        lock (_rebuildLock)
        {
            Snapshot next;
            try
            {
                next = Build();
            }
            catch (Exception ex)
            {
                // Keep publishing the last good config; the next change tries again.
                Log.RebuildFailed(_logger, ex);
                return;
            }

            var current = _config;
            if (current.Routes.SequenceEqual(next.Routes) && current.Clusters.SequenceEqual(next.Clusters))
            {
                return;
            }
            _config = next;
            current.SignalChange();
            Log.Published(_logger, next.Clusters.Count, next.Clusters.Sum(c => c.Destinations?.Count ?? 0), next.Routes.Count);
        }
    }

    private Snapshot Build()
    {
        var options = _options.CurrentValue;
        var states = _store.Clusters;
        var routes = new List<RouteConfig>();
        var clusters = new List<ClusterConfig>();
        // Ordinal order: equal input gives an equal list, so "nothing changed" is detected.
        foreach (var (clusterName, cluster) in options.Clusters.OrderBy(c => c.Key, StringComparer.Ordinal))
        {
            states.TryGetValue(clusterName, out var state);
            foreach (var (portName, port) in cluster.Ports.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                clusters.Add(BuildPortCluster(clusterName, portName, port, state));
            }
        }
        foreach (var contributor in _contributors)
        {
            var contribution = contributor.Contribute(options, states);
            routes.AddRange(contribution.Routes);
            clusters.AddRange(contribution.Clusters);
        }
        return new Snapshot(routes, clusters);
    }

    /// <summary>One published configuration; its change token fires when a newer one replaces it.</summary>
    private sealed class Snapshot(IReadOnlyList<RouteConfig> routes, IReadOnlyList<ClusterConfig> clusters) : IProxyConfig
    {
        private readonly CancellationTokenSource _changed = new();

        public string RevisionId { get; } = Guid.NewGuid().ToString();

        public IReadOnlyList<RouteConfig> Routes { get; } = routes;

        public IReadOnlyList<ClusterConfig> Clusters { get; } = clusters;

        public IChangeToken ChangeToken => new CancellationChangeToken(_changed.Token);

        public void SignalChange() => _changed.Cancel();
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Publishing proxy configuration: {Clusters} clusters, {Destinations} destinations, {Routes} routes.")]
        public static partial void Published(ILogger logger, int clusters, int destinations, int routes);

        [LoggerMessage(2, LogLevel.Error, "Could not rebuild the proxy configuration; the last one stays in use.")]
        public static partial void RebuildFailed(ILogger logger, Exception exception);
    }
}
