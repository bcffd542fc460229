using PatroniYarp.Diagnostics;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Configuration;

namespace PatroniYarp.Tcp;

/// <summary>
/// After YARP applies a new configuration, closes exactly the sessions whose member left their port's destinations
/// (role change, lag, noloadbalance, member gone) or whose port is gone; every other session is left alone.
/// <see cref="TopologyChangeLog"/> says what changed and how many sessions that closed, in one line per cluster.
/// </summary>
internal sealed class TcpSessionReaper(IServiceProvider services, SessionRegistry registry, TopologyChangeLog topology)
    : IConfigChangeListener
{
    // Resolved on first use: YARP's state lookup is the config manager, which itself asks for the change listeners.
    private IProxyStateLookup? _state;

    public void ConfigurationApplied(IReadOnlyList<IProxyConfig> proxyConfigs)
    {
        _state ??= services.GetRequiredService<IProxyStateLookup>();
        topology.Applied(proxyConfigs, registry.CloseIneligible(_state));
    }

    public void ConfigurationLoaded(IReadOnlyList<IProxyConfig> proxyConfigs)
    {
    }

    public void ConfigurationLoadingFailed(IProxyConfigProvider configProvider, Exception exception)
    {
    }

    public void ConfigurationApplyingFailed(IReadOnlyList<IProxyConfig> proxyConfigs, Exception exception)
    {
    }
}
