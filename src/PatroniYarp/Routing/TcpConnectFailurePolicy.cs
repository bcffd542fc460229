using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace PatroniYarp.Routing;

/// <summary>
/// The passive health policy of the per-port clusters. YARP calls passive policies only for proxied HTTP requests,
/// which these clusters never see: the TCP side marks a member whose connect failed itself, through
/// <see cref="IDestinationHealthUpdater.SetPassive"/>. The policy exists so that passive health is enabled on the
/// clusters and a passive-unhealthy destination drops out of <c>AvailableDestinations</c>.
/// </summary>
internal sealed class TcpConnectFailurePolicy : IPassiveHealthCheckPolicy
{
    public const string PolicyName = "TcpConnectFailure";

    public string Name => PolicyName;

    public void RequestProxied(HttpContext context, ClusterState cluster, DestinationState destination)
    {
    }
}
