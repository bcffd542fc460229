using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Time.Testing;
using PatroniYarp.Configuration;
using PatroniYarp.Diagnostics;
using PatroniYarp.Patroni;
using PatroniYarp.Tests.Routing;
using static PatroniYarp.Tests.Routing.RoutingTestData;

namespace PatroniYarp.Tests.Diagnostics;

public class ClusterPollHealthCheckTests
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2025-01-01T00:00:00Z"));

    [Fact]
    public async Task Check_NeverPolled_UnhealthyNamingCluster()
    {
        var result = await CheckAsync(Store(null));

        Assert.Equal(HealthStatus.Unhealthy, result.Status);
        Assert.Contains(Cluster, result.Description);
        Assert.StartsWith("never polled", (string)result.Data[Cluster]);
    }

    [Fact]
    public async Task Check_PolledWithinThreeIntervals_Healthy()
    {
        _time.Advance(TimeSpan.FromSeconds(8));

        var result = await CheckAsync(Store(Sample302()));

        Assert.Equal(HealthStatus.Healthy, result.Status);
        Assert.Equal("ok", result.Data[Cluster]);
    }

    [Fact]
    public async Task Check_LastGoodPollOlderThanThreeIntervals_DegradedWithLastError()
    {
        var store = Store(Sample302());
        store.ReportFailure(Cluster, 2, "every host failed", _time.GetUtcNow());
        _time.Advance(TimeSpan.FromSeconds(10));

        var result = await CheckAsync(store);

        Assert.Equal(HealthStatus.Degraded, result.Status);
        Assert.Contains(Cluster, result.Description);
        Assert.Equal("last good poll 10 s ago (limit 9 s): every host failed", result.Data[Cluster]);
    }

    private Task<HealthCheckResult> CheckAsync(ClusterStateStore store) =>
        new ClusterPollHealthCheck(store, new TestOptionsMonitor<ProxyOptions>(SampleOptions() with { ClusterUpdateInterval = 3 }), _time)
            .CheckHealthAsync(new HealthCheckContext());
}
