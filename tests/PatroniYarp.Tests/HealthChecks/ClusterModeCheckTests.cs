using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using PatroniYarp.HealthChecks;
using PatroniYarp.Patroni;
using static PatroniYarp.Tests.Routing.RoutingTestData;

namespace PatroniYarp.Tests.HealthChecks;

/// <summary>/clusters/{cluster}/members/{member}/{check} through the real Program, from a cluster state the test sets.</summary>
[Collection(HybridCacheCollection.Name)]
public sealed class ClusterModeCheckTests : IClassFixture<ClusterModeCheckTests.Factory>
{
    private readonly ClusterStateStore _store;
    private readonly HttpClient _client;

    public ClusterModeCheckTests(Factory factory)
    {
        _store = factory.Services.GetRequiredService<ClusterStateStore>();
        _store.SetClusters([Cluster]);
        _store.TryApply(Cluster, Sample302(sequence: DateTime.UtcNow.Ticks, pg2Lag: 32 * 1024 * 1024));
        _client = factory.CreateClient();
    }

    [Theory]
    [InlineData("pg1", "primary", HttpStatusCode.OK)]
    [InlineData("pg0", "primary", HttpStatusCode.ServiceUnavailable)]
    [InlineData("pg0", "sync", HttpStatusCode.OK)]
    [InlineData("pg2", "async", HttpStatusCode.OK)]
    [InlineData("pg2", "async?lag=16MB", HttpStatusCode.ServiceUnavailable)]
    [InlineData("pg2", "replica?lag=64MB", HttpStatusCode.OK)]
    [InlineData("pg1", "replica", HttpStatusCode.ServiceUnavailable)]
    public async Task Get_AnswersFromClusterState(string member, string check, HttpStatusCode expected)
    {
        var response = await _client.GetAsync($"/clusters/{Cluster}/members/{member}/{check}");

        Assert.Equal(expected, response.StatusCode);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(member, body.RootElement.GetProperty("member").GetString());
        Assert.Equal((int)expected, body.RootElement.GetProperty("status").GetInt32());
        Assert.False(body.RootElement.GetProperty("stale").GetBoolean());
    }

    [Fact]
    public async Task Get_Body_SaysRoleStateLagAndWhy()
    {
        var response = await _client.GetAsync($"/clusters/{Cluster}/members/pg2/replica?lag=1MB");

        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("replica", body.RootElement.GetProperty("role").GetString());
        Assert.Equal("running", body.RootElement.GetProperty("state").GetString());
        Assert.Equal(32 * 1024 * 1024, body.RootElement.GetProperty("lag").GetInt64());
        Assert.Contains("exceeds 1048576 bytes", body.RootElement.GetProperty("reason").GetString());
    }

    [Theory]
    [InlineData("HEAD")]
    [InlineData("OPTIONS")]
    public async Task HeadAndOptions_StatusWithoutBody(string method)
    {
        var leader = await _client.SendAsync(new HttpRequestMessage(new HttpMethod(method), $"/clusters/{Cluster}/members/pg1/primary"));
        var replica = await _client.SendAsync(new HttpRequestMessage(new HttpMethod(method), $"/clusters/{Cluster}/members/pg0/primary"));

        Assert.Equal(HttpStatusCode.OK, leader.StatusCode);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, replica.StatusCode);
        Assert.Empty(await leader.Content.ReadAsByteArrayAsync());
    }

    [Theory]
    [InlineData("/clusters/nope/members/pg1/primary", HttpStatusCode.NotFound, "unknown cluster 'nope'")]
    [InlineData("/clusters/main/members/pg1/writable", HttpStatusCode.NotFound, "unknown check 'writable'")]
    [InlineData("/clusters/main/members/pg9/primary", HttpStatusCode.ServiceUnavailable, "member 'pg9' is not in the cluster")]
    public async Task Get_UnknownClusterMemberOrCheck(string path, HttpStatusCode expected, string message)
    {
        var response = await _client.GetAsync(path);

        Assert.Equal(expected, response.StatusCode);
        Assert.Contains(message, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Get_StaleCluster_503ForEveryMember()
    {
        _store.ReportFailure(Cluster, long.MaxValue, "all Patroni hosts failed", DateTimeOffset.UtcNow);

        var response = await _client.GetAsync($"/clusters/{Cluster}/members/pg1/primary");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(CheckAnswer.Stale, Assert.Single(response.Headers.GetValues(CheckAnswer.BackendHeader)));
        Assert.Contains("all Patroni hosts failed", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Get_SidecarRoutesAbsentWithoutBackend_404()
    {
        Assert.Equal(HttpStatusCode.NotFound, (await _client.GetAsync("/primary")).StatusCode);
    }

    public sealed class Factory : WebApplicationFactory<Program>
    {
        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            builder.UseSetting("clusters:main:hosts:0", "http://127.0.0.1:8001");
            builder.UseSetting("clusters:main:ports:master:listen", "127.0.0.1:6432");
            builder.UseSetting("clusters:main:ports:master:roles:0", "leader");
            // The state comes from the test: no poller.
            builder.ConfigureTestServices(services =>
            {
                foreach (var service in services.Where(s => s.ServiceType == typeof(IHostedService)
                    && s.ImplementationFactory?.Method.DeclaringType?.Namespace?.StartsWith("PatroniYarp.Patroni", StringComparison.Ordinal) == true).ToList())
                {
                    services.Remove(service);
                }
            });
        }
    }
}
