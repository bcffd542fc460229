using PatroniYarp.Routing;

namespace PatroniYarp.Tcp;

/// <summary>
/// One bound Kestrel endpoint of a configured port. A new instance is made whenever the port's listen address changes,
/// so sessions accepted by a replaced or removed listener can be told apart and closed.
/// </summary>
internal sealed class TcpPortEndpoint(string clusterName, string portName, string url)
{
    private volatile bool _retired;

    public string ClusterName { get; } = clusterName;

    public string PortName { get; } = portName;

    /// <summary>YARP cluster id of the port (<see cref="ProxyClusterIds.ForPort"/>).</summary>
    public string ClusterId { get; } = ProxyClusterIds.ForPort(clusterName, portName);

    /// <summary>Kestrel endpoint name in the generated configuration.</summary>
    public string EndpointName { get; } = EndpointNameFor(clusterName, portName);

    public string Url { get; } = url;

    /// <summary>Set once the port is removed or rebound: connections still arriving on the old listener are refused.</summary>
    public bool IsRetired => _retired;

    public void Retire() => _retired = true;

    public static string EndpointNameFor(string clusterName, string portName) => $"tcp/{clusterName}/{portName}";
}
