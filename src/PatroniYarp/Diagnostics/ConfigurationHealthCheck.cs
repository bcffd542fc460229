using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using PatroniYarp.Configuration;

namespace PatroniYarp.Diagnostics;

/// <summary>
/// Healthy when a valid configuration is in force (an invalid reload keeps the running one, so this stays healthy and
/// the rejected file is in the log). The process cannot start without one; the check makes that visible to probes.
/// </summary>
internal sealed class ConfigurationHealthCheck(IOptionsMonitor<ProxyOptions> options) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var proxy = options.CurrentValue;
        var ports = proxy.Clusters.Values.Sum(static c => c.Ports.Count);
        return Task.FromResult(HealthCheckResult.Healthy($"{proxy.Clusters.Count} cluster(s), {ports} port(s) configured"));
    }
}
