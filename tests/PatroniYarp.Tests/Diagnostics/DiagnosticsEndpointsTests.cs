using System.Net;
using System.Text.Json;
using PatroniYarp.Tests.Admin;

namespace PatroniYarp.Tests.Diagnostics;

/// <summary>/metrics, /healthz and /ui through the real Program (in-memory server, no Patroni: never polled).</summary>
public sealed class DiagnosticsEndpointsTests(AdminApiTests.Factory factory) : IClassFixture<AdminApiTests.Factory>
{
    private readonly HttpClient _client = factory.CreateClient();

    [Fact]
    public async Task GetHealthz_ClusterNeverPolled_503NamingCluster()
    {
        var response = await _client.GetAsync("/healthz");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("Unhealthy", json.RootElement.GetProperty("status").GetString());
        var clusters = json.RootElement.GetProperty("checks").GetProperty("clusters");
        Assert.StartsWith("never polled", clusters.GetProperty("data").GetProperty("main").GetString());
        Assert.Equal("Healthy", json.RootElement.GetProperty("checks").GetProperty("configuration").GetProperty("status").GetString());
    }

    [Fact]
    public async Task GetHealthzLive_ClusterNeverPolled_200ConfigurationOnly()
    {
        var response = await _client.GetAsync("/healthz/live");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(["configuration"], json.RootElement.GetProperty("checks").EnumerateObject().Select(p => p.Name));
    }

    [Fact]
    public async Task GetMetrics_PrometheusTextWithRuntimeInstruments()
    {
        var response = await _client.GetAsync("/metrics");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType?.MediaType);
        // This host polls nothing (see AdminApiTests.Factory); the PatroniYarp instruments are scraped in the integration tests.
        Assert.Contains("# TYPE dotnet_gc_collections_total counter", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task GetUi_SelfContainedHtmlThatPollsClusters()
    {
        var response = await _client.GetAsync("/ui");
        var html = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/html", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("default-src 'none'", response.Headers.GetValues("Content-Security-Policy").Single());
        Assert.Contains("fetch(\"clusters\"", html);
        Assert.DoesNotContain("src=\"http", html);
        Assert.DoesNotContain("href=\"http", html);
    }
}
