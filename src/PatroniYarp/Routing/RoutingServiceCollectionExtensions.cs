using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.AspNetCore.DataProtection.XmlEncryption;
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
        // YARP brings ASP.NET data protection, for session-affinity cookies, which no route here sets; it still makes a
        // key at start-up. In memory, that key is neither written under $HOME (a stateless proxy's root filesystem may be
        // read-only) nor warned about as stored unencrypted.
        services.Configure<KeyManagementOptions>(static options =>
        {
            options.XmlRepository = new InMemoryXmlRepository();
            options.XmlEncryptor = new NullXmlEncryptor();
        });
        services.AddSingleton<PatroniProxyConfigProvider>();
        services.AddSingleton<IProxyConfigProvider>(sp => sp.GetRequiredService<PatroniProxyConfigProvider>());
        // Replaces YARP's no-op resolver (registered with TryAdd by AddReverseProxy).
        services.AddSingleton<IDestinationResolver, PatroniDestinationResolver>();
        services.AddSingleton<IPassiveHealthCheckPolicy, TcpConnectFailurePolicy>();
        return services;
    }
}
