using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using PatroniYarp.Configuration;
using PatroniYarp.Patroni;

namespace PatroniYarp.Diagnostics;

/// <summary>
/// Healthy while every cluster was polled successfully within <see cref="FreshPolls"/> × cluster_update_interval.
/// A cluster that fell behind is Degraded (routing goes on with its last known members, and every replica of the proxy
/// sees the same Patroni, so taking this one out of service would not help); a cluster never polled successfully is
/// Unhealthy (this process cannot route its ports yet).
/// </summary>
internal sealed class ClusterPollHealthCheck(ClusterStateStore store, IOptionsMonitor<ProxyOptions> options, TimeProvider time)
    : IHealthCheck
{
    /// <summary>Poll intervals a cluster may go without a good poll before it counts as behind.</summary>
    public const int FreshPolls = 3;

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var proxy = options.CurrentValue;
        var limit = proxy.ClusterUpdatePeriod * FreshPolls;
        var now = time.GetUtcNow();
        var clusters = store.Clusters;
        var data = new Dictionary<string, object>(StringComparer.Ordinal);
        var neverPolled = new List<string>();
        var behind = new List<string>();
        foreach (var name in proxy.Clusters.Keys.Order(StringComparer.Ordinal))
        {
            var state = clusters.GetValueOrDefault(name);
            if (state?.LastGoodPoll is not { } lastGood)
            {
                neverPolled.Add(name);
                data[name] = $"never polled successfully{ErrorOf(state)}";
            }
            else if (now - lastGood > limit)
            {
                behind.Add(name);
                data[name] = $"last good poll {(now - lastGood).TotalSeconds:0.#} s ago (limit {limit.TotalSeconds:0.#} s){ErrorOf(state)}";
            }
            else
            {
                data[name] = "ok";
            }
        }

        var result = neverPolled.Count > 0
            ? HealthCheckResult.Unhealthy($"never polled successfully: {string.Join(", ", neverPolled)}", data: data)
            : behind.Count > 0
                ? HealthCheckResult.Degraded($"not polled successfully for over {limit.TotalSeconds:0.#} s: {string.Join(", ", behind)}", data: data)
                : HealthCheckResult.Healthy($"{data.Count} cluster(s) polled within {limit.TotalSeconds:0.#} s", data);
        return Task.FromResult(result);
    }

    private static string ErrorOf(ClusterState? state) => state?.LastError is { } error ? $": {error}" : "";
}
