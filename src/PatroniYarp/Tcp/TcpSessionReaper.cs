using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Configuration;

namespace PatroniYarp.Tcp;

/// <summary>
/// After YARP applies a new configuration, closes exactly the sessions whose member left their port's destinations
/// (role change, lag, noloadbalance, member gone) or whose port is gone; every other session is left alone.
/// </summary>
internal sealed partial class TcpSessionReaper(IServiceProvider services, SessionRegistry registry, ILogger<TcpSessionReaper> logger)
    : IConfigChangeListener
{
    // Resolved on first use: YARP's state lookup is the config manager, which itself asks for the change listeners.
    private IProxyStateLookup? _state;

    public void ConfigurationApplied(IReadOnlyList<IProxyConfig> proxyConfigs)
    {
        _state ??= services.GetRequiredService<IProxyStateLookup>();
        foreach (var closed in registry.CloseIneligible(_state))
        {
            Log.SessionsClosed(logger, closed.Port, closed.Member, closed.Reason, closed.Count);
        }
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

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Port {Port}: member {Member}: {Reason}; {Count} session(s) closed.")]
        public static partial void SessionsClosed(ILogger logger, string port, string member, string reason, int count);
    }
}
