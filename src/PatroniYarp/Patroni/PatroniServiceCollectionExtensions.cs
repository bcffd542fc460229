using Microsoft.Extensions.DependencyInjection.Extensions;

namespace PatroniYarp.Patroni;

internal static class PatroniServiceCollectionExtensions
{
    /// <summary>The cluster state store and the loops that keep it current from each cluster's Patroni API.</summary>
    public static IServiceCollection AddPatroniDiscovery(this IServiceCollection services)
    {
        services.AddSingleton<ClusterStateStore>();
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<ClusterPoller>();
        services.AddHostedService(static sp => sp.GetRequiredService<ClusterPoller>());
        services.AddSingleton<IClusterRefresher>(static sp => sp.GetRequiredService<ClusterPoller>());
        return services;
    }
}
