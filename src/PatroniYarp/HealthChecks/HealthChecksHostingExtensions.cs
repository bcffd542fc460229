using Microsoft.Extensions.DependencyInjection.Extensions;
using PatroniYarp.Routing;
using Yarp.ReverseProxy.Configuration;

namespace PatroniYarp.HealthChecks;

internal static class HealthChecksHostingExtensions
{
    /// <summary>
    /// The health-check API: its YARP routes, the sidecar answer cache (HybridCache) and its sweeper, and the ASP.NET
    /// health checks behind /healthz (mapped by Diagnostics.MapDiagnostics). Expects YARP and ProxyOptions registered.
    /// </summary>
    public static IServiceCollection AddPatroniHealthChecks(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddHybridCache();
        services.TryAddSingleton<SidecarCheckClient>();
        services.AddHostedService<CacheSweeper>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IProxyConfigContributor, HealthCheckRoutes>());
        services.AddHealthChecks();
        return services;
    }

    /// <summary>The YARP pipeline step that answers the check routes; other routes pass on.</summary>
    public static IReverseProxyApplicationBuilder UsePatroniHealthChecks(this IReverseProxyApplicationBuilder proxy)
    {
        proxy.UseMiddleware<HealthCheckMiddleware>();
        return proxy;
    }
}
