using PatroniYarp.Configuration;
using PatroniYarp.Patroni;
using Yarp.ReverseProxy.Configuration;

namespace PatroniYarp.Routing;

/// <summary>
/// Adds routes and clusters to what <see cref="PatroniProxyConfigProvider"/> publishes, next to its per-port
/// clusters (the HTTP health-check routes plug in here). Called on every rebuild, i.e. whenever the configuration
/// or a cluster's state changes; it must be pure and fast, and return equal values for equal input so that an
/// unchanged state publishes nothing.
/// </summary>
internal interface IProxyConfigContributor
{
    ProxyConfigContribution Contribute(ProxyOptions options, IReadOnlyDictionary<string, ClusterState> clusters);
}

internal sealed record ProxyConfigContribution(IReadOnlyList<RouteConfig> Routes, IReadOnlyList<ClusterConfig> Clusters);
