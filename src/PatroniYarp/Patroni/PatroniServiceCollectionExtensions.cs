namespace PatroniYarp.Patroni;

// STUB (helper C replaces): Patroni API client, one poll loop per cluster, the state store.
internal static class PatroniServiceCollectionExtensions
{
    public static IServiceCollection AddPatroniDiscovery(this IServiceCollection services)
    {
        services.AddSingleton<ClusterStateStore>();
        return services;
    }
}
