using PatroniYarp.Configuration;
using PatroniYarp.Patroni;
using PatroniYarp.Routing;
using Yarp.ReverseProxy.Configuration;

namespace PatroniYarp.HealthChecks;

/// <summary>
/// The health-check API as YARP routes: the sidecar checks (/primary, /replica, …) to the "patroni-backend" cluster
/// (the configured Patroni REST API) and the cluster-mode checks (/clusters/{cluster}/members/{member}/{check}),
/// which <see cref="HealthCheckMiddleware"/> answers from the cluster state. GET, HEAD and OPTIONS only.
/// </summary>
internal sealed class HealthCheckRoutes : IProxyConfigContributor
{
    public const string BackendClusterId = "patroni-backend";
    public const string ClusterStateClusterId = "patroni-cluster-state";
    public const string BackendDestinationId = "patroni";

    /// <summary>Route metadata key whose value says how <see cref="HealthCheckMiddleware"/> answers the route.</summary>
    public const string ModeKey = "PatroniYarp.HealthCheck";
    public const string SidecarMode = "sidecar";
    public const string ClusterMode = "cluster";

    public const string ClusterModePath = "/clusters/{cluster}/members/{member}/{check}";

    private static readonly IReadOnlyList<string> Methods = ["GET", "HEAD", "OPTIONS"];

    private static readonly RouteConfig ClusterModeRoute = new()
    {
        RouteId = "check/cluster-mode",
        ClusterId = ClusterStateClusterId,
        Match = new RouteMatch { Path = ClusterModePath, Methods = Methods },
        Metadata = new Dictionary<string, string> { [ModeKey] = ClusterMode },
    };

    // Answered from the cluster state store: no destinations, nothing is forwarded.
    private static readonly ClusterConfig ClusterStateCluster = new() { ClusterId = ClusterStateClusterId };

    private static readonly IReadOnlyList<RouteConfig> SidecarRoutes =
    [
        .. PatroniChecks.All.Select(check => new RouteConfig
        {
            RouteId = $"check/{check}",
            ClusterId = BackendClusterId,
            Match = new RouteMatch { Path = "/" + check, Methods = Methods },
            Metadata = new Dictionary<string, string> { [ModeKey] = SidecarMode },
        }),
    ];

    public ProxyConfigContribution Contribute(ProxyOptions options, IReadOnlyDictionary<string, ClusterState> clusters)
    {
        if (options.SidecarBackend is not { } backend)
        {
            return new ProxyConfigContribution([ClusterModeRoute], [ClusterStateCluster]);
        }
        var backendCluster = new ClusterConfig
        {
            ClusterId = BackendClusterId,
            Destinations = new Dictionary<string, DestinationConfig>
            {
                [BackendDestinationId] = new() { Address = backend.Address },
            },
            HttpClient = new HttpClientConfig { DangerousAcceptAnyServerCertificate = backend.Insecure },
        };
        return new ProxyConfigContribution([ClusterModeRoute, .. SidecarRoutes], [ClusterStateCluster, backendCluster]);
    }
}
