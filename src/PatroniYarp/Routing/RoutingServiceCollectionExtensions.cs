namespace PatroniYarp.Routing;

// STUB (helper D replaces): YARP config provider, destination resolver, healthy-only destination policy.
internal static class RoutingServiceCollectionExtensions
{
    public static IServiceCollection AddPatroniRouting(this IServiceCollection services)
    {
        services.AddReverseProxy();
        return services;
    }
}
