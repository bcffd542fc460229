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

    /// <summary>
    /// Keeps ASP.NET's authorization middleware out of the pipeline. YARP registers authorization services, so
    /// WebApplication would add the middleware on its own; no endpoint here has an authorization policy (the admin API
    /// checks its token itself), yet the middleware fills HttpContext.Items on every request: 260 of the 410 bytes a
    /// cached /primary allocated. The key is the one UseAuthorization() sets to say "already added"; should an
    /// endpoint ever carry authorization metadata, ASP.NET refuses the request loudly instead of skipping the check.
    /// </summary>
    public static WebApplication WithoutAuthorizationMiddleware(this WebApplication app)
    {
        ((IApplicationBuilder)app).Properties[AuthorizationMiddlewareSetKey] = true;
        return app;
    }

    private const string AuthorizationMiddlewareSetKey = "__AuthorizationMiddlewareSet";

    /// <summary>The YARP pipeline step that answers the check routes; other routes pass on.</summary>
    public static IReverseProxyApplicationBuilder UsePatroniHealthChecks(this IReverseProxyApplicationBuilder proxy)
    {
        proxy.UseMiddleware<HealthCheckMiddleware>();
        return proxy;
    }
}
