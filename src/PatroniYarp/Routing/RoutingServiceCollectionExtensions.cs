using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.ServiceDiscovery;

namespace PatroniYarp.Routing;

internal static class RoutingServiceCollectionExtensions
{
    /// <summary>
    /// YARP with PatroniYarp's configuration (one cluster per port, destinations = eligible members), the member
    /// host resolver and the passive health policy the TCP side reports connect failures under.
    /// Needs <see cref="Patroni.ClusterStateStore"/> and IOptionsMonitor&lt;ProxyOptions&gt; from the other features.
    /// </summary>
    public static IServiceCollection AddPatroniRouting(this IServiceCollection services)
    {
        services.AddReverseProxy();
        services.AddSingleton<PatroniProxyConfigProvider>();
        services.AddSingleton<IProxyConfigProvider>(sp => sp.GetRequiredService<PatroniProxyConfigProvider>());
        // Replaces YARP's no-op resolver (registered with TryAdd by AddReverseProxy).
        services.AddSingleton<IDestinationResolver, PatroniDestinationResolver>();
        services.AddSingleton<IPassiveHealthCheckPolicy, TcpConnectFailurePolicy>();
        return services;
    }
}
