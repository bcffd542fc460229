using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace PatroniYarp.Tcp;

/// <summary>
/// Wraps YARP's destinations updater, the one place where a cluster's available destinations are recomputed (for a
/// new configuration and for passive-health changes, which YARP reports nowhere else), and wakes the sessions held on
/// that port afterwards and brings its spare connections in line.
/// </summary>
internal sealed class SignalingClusterDestinationsUpdater(IClusterDestinationsUpdater inner, HeldSessions held, SpareBackends spares)
    : IClusterDestinationsUpdater
{
    public void UpdateAvailableDestinations(ClusterState cluster)
    {
        inner.UpdateAvailableDestinations(cluster);
        held.Signal(cluster.ClusterId);
        spares.DestinationsChanged(cluster.ClusterId);
    }

    public void UpdateAllDestinations(ClusterState cluster)
    {
        inner.UpdateAllDestinations(cluster);
        held.Signal(cluster.ClusterId);
        spares.DestinationsChanged(cluster.ClusterId);
    }
}
