using System.Text.Json;
using Npgsql;
using PatroniYarp.IntegrationTests.Infrastructure;
using PatroniYarp.Testing;

namespace PatroniYarp.IntegrationTests.Diagnostics;

/// <summary>/metrics, /healthz and the topology log line after real traffic on the real cluster.</summary>
[Collection(RealClusterCollection.Name)]
public sealed class MetricsScrapeTests(RealClusterFixture fixture) : IAsyncLifetime
{
    private readonly PatroniClusterScript _cluster = fixture.Cluster;
    private readonly int _masterPort = FreePort.Next();
    private readonly int _replicasPort = FreePort.Next();
    private readonly int _deadPort = FreePort.Next();
    private PatroniYarpProcess _proxy = null!;
    private string _leader = "";

    public async Task InitializeAsync()
    {
        _leader = await _cluster.LeaderAsync();
        var admin = FreePort.Next();
        // "dead" routes to every member but at a PostgreSQL port where nothing listens: every connect fails.
        _proxy = await PatroniYarpProcess.StartAsync(TestYaml.Config(admin,
            TestYaml.Port("master", _masterPort, "leader") +
            TestYaml.Port("replicas", _replicasPort, "sync, async", "max_lag_in_bytes: 16777216") + "\n" +
            TestYaml.Port("dead", _deadPort, "any", $"host_port: {FreePort.Next()}") +
            // The health-check API in sidecar mode beside the leader's Patroni, for the check instruments.
            $"\nbackend: {{host: 127.0.0.1, port: {new Uri(PatroniClusterScript.ApiUrlOf(_leader)).Port}}}\ncache: {{ttl: 60, interval: 1}}\n"), admin);
        await ProxyState.WaitForDestinationsAsync(_proxy, "master", [_leader]);
    }

    public async Task DisposeAsync() => await _proxy.DisposeAsync();

    [Fact]
    public async Task Metrics_AfterSessionsAndFailedConnects_ShowInstrumentsWithValues()
    {
        await using var master = await Pg.OpenAsync(_masterPort);
        await using var replica = await Pg.OpenAsync(_replicasPort);
        await Pg.WhereAsync(master);
        await Pg.WhereAsync(replica);
        await Assert.ThrowsAnyAsync<Exception>(() => Pg.OpenAsync(_deadPort));

        var samples = await ScrapeUntilAsync(s =>
            s.Sum("patroniyarp_sessions_open", ("cluster", "demo"), ("port", "master"), ("member", _leader)) == 1
            && s.Sum("patroniyarp_sessions_open", ("port", "replicas")) == 1
            && s.Sum("patroniyarp_connect_failures_total", ("port", "dead")) >= 1);

        Assert.True(samples.Sum("patroniyarp_sessions_total", ("port", "master"), ("member", _leader)) >= 1);
        Assert.True(samples.Sum("patroniyarp_traffic_in_bytes_total", ("port", "master")) > 0);
        Assert.True(samples.Sum("patroniyarp_traffic_out_bytes_total", ("port", "replicas")) > 0);
        Assert.True(samples.Sum("patroniyarp_poll_duration_seconds_count", ("cluster", "demo"), ("outcome", "success")) > 0);
        Assert.Contains(samples, s => s.Name == "patroniyarp_poll_duration_seconds_bucket" && s.Labels["host"].StartsWith("http://127.0.0.1:"));
        Assert.True(samples.Has("patroniyarp_cluster_staleness_seconds"));
        Assert.True(samples.Sum("patroniyarp_connections_limit") > 1000);
        Assert.True(samples.Sum("patroniyarp_connections_open") >= 2);
        Assert.Equal(0, samples.Sum("patroniyarp_cluster_stale", ("cluster", "demo")));
        Assert.True(samples.Has("process_cpu_time_seconds_total") || samples.Any(s => s.Name.StartsWith("dotnet_")));
    }

    [Fact]
    public async Task Metrics_AfterHealthChecks_CountRequestsCacheMissesAndBackendLatency()
    {
        for (var i = 0; i < 5; i++)
        {
            using var response = await _proxy.Admin.GetAsync("/primary");
            Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        }

        var samples = await ScrapeUntilAsync(s =>
            s.Sum("patroniyarp_health_check_requests_total") >= 5 && s.Sum("patroniyarp_health_check_cache_misses_total") >= 1);

        // One call to Patroni within the ttl; the other four were cache hits (hits = requests - misses).
        Assert.Equal(1, samples.Sum("patroniyarp_health_check_cache_misses_total"));
        Assert.True(samples.Sum("patroniyarp_health_check_backend_duration_seconds_count") >= 1);
    }

    [Fact]
    public async Task NoLoadBalanceTag_ReplicaSessionClosed_CountedByReasonOnOneLogLine()
    {
        await using var session = await Pg.OpenAsync(_replicasPort);
        var landing = await Pg.WhereAsync(session);
        var tagged = PatroniClusterScript.PostgresPorts.Single(p => p.Value == landing.ServerPort).Key;
        try
        {
            await _cluster.TagAsync(tagged, "noloadbalance", "true");

            await ScrapeUntilAsync(s =>
                s.Sum("patroniyarp_sessions_closed_total", ("port", "replicas"), ("member", tagged), ("reason", "noloadbalance")) == 1
                && s.Sum("patroniyarp_sessions_open", ("port", "replicas"), ("member", tagged)) == 0);
            await _proxy.WaitForOutputAsync(
                line => line.Contains($"{tagged} left replicas: tagged noloadbalance") && line.Contains("1 session(s) closed"),
                "one log line naming the member, the port, why, and the closed session");
        }
        finally
        {
            await _cluster.UntagAsync(tagged, "noloadbalance");
        }
    }

    [Fact]
    public async Task Switchover_CountsLeaderChangeAndLogsItOnOneLine()
    {
        var candidate = PatroniClusterScript.Members.First(m => m != _leader);

        await _cluster.SwitchoverAsync(candidate);

        await ScrapeUntilAsync(s => s.Sum("patroniyarp_leader_changes_total", ("cluster", "demo")) >= 1);
        // PostgreSQL itself ends the old leader's sessions when it is demoted, so a line may close none. Depending on
        // what each poll saw (the old leader gone, no leader for a moment, the new one not yet confirmed by its own
        // API), the change takes one line or a few: each says what changed.
        await _proxy.WaitForOutputAsync(line => line.Contains($"{_leader} left master"), "a log line naming the old leader leaving the leader port");
        await _proxy.WaitForOutputAsync(line => line.Contains($"leader {_leader} → "), "a log line naming the leader change");
        await _proxy.WaitForOutputAsync(line => line.Contains($"{candidate} joined master"), "a log line naming the new leader joining the leader port");
    }

    [Fact]
    public async Task Healthz_ClusterPolled_HealthyAndNamesCluster()
    {
        using var response = await _proxy.Admin.GetAsync("/healthz");
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());

        Assert.True(response.IsSuccessStatusCode);
        Assert.Equal("Healthy", json.RootElement.GetProperty("status").GetString());
        Assert.Equal("ok", json.RootElement.GetProperty("checks").GetProperty("clusters").GetProperty("data").GetProperty("demo").GetString());
    }

    private Task<IReadOnlyList<PrometheusSample>> ScrapeUntilAsync(Func<IReadOnlyList<PrometheusSample>, bool> condition) =>
        PrometheusText.ScrapeUntilAsync(_proxy, condition, TimeSpan.FromSeconds(30));
}
