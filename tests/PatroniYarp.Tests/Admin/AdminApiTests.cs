using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using PatroniYarp.Patroni;
using static PatroniYarp.Tests.Routing.RoutingTestData;

namespace PatroniYarp.Tests.Admin;

/// <summary>The admin API through the real Program, with in-memory configuration and a fake refresher.</summary>
public sealed class AdminApiTests : IClassFixture<AdminApiTests.Factory>
{
    private readonly Factory _factory;
    private readonly HttpClient _client;

    public AdminApiTests(Factory factory)
    {
        _factory = factory;
        _client = factory.CreateClient();
    }

    [Fact]
    public async Task GetRoot_ReturnsOk()
    {
        var response = await _client.GetAsync("/");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("OK", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task GetUpdateClusters_AllSucceed_Returns200WithUpdatedClusters()
    {
        _factory.Refresher.Result = new ClusterRefreshResult(["main", "other"], new Dictionary<string, string>());

        var response = await _client.GetAsync("/update_clusters");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(["main", "other"], json.RootElement.GetProperty("updated").EnumerateArray().Select(e => e.GetString()));
        Assert.Empty(json.RootElement.GetProperty("failed").EnumerateObject());
    }

    [Fact]
    public async Task GetUpdateClusters_OneFails_Returns503NamingClusterAndReason()
    {
        _factory.Refresher.Result = new ClusterRefreshResult(
            ["main"],
            new Dictionary<string, string> { ["other"] = "http://127.0.0.1:8008: connection refused" });

        var response = await _client.GetAsync("/update_clusters");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("http://127.0.0.1:8008: connection refused", json.RootElement.GetProperty("failed").GetProperty("other").GetString());
        Assert.Equal(["main"], json.RootElement.GetProperty("updated").EnumerateArray().Select(e => e.GetString()));
    }

    [Fact]
    public async Task GetConnections_NoSessions_ReturnsEmptyList()
    {
        using var client = _factory.CreateClient();

        using var response = await client.GetAsync("/connections");
        var json = await response.Content.ReadFromJsonAsync<JsonElement>();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(0, json.GetProperty("count").GetInt32());
        Assert.Equal(0, json.GetProperty("connections").GetArrayLength());
    }

    [Fact]
    public async Task GetClusters_WithSnapshot_ReportsMembersPortsAndYarpDestinations()
    {
        var store = _factory.Services.GetRequiredService<ClusterStateStore>();
        store.SetClusters([Cluster]);
        store.TryApply(Cluster, Sample302(sequence: DateTime.UtcNow.Ticks));

        // YARP reloads asynchronously after the store changes.
        JsonElement cluster = default;
        await WaitUntilAsync(async () =>
        {
            using var json = JsonDocument.Parse(await _client.GetStringAsync("/clusters"));
            cluster = json.RootElement.GetProperty("clusters").GetProperty(Cluster).Clone();
            return cluster.GetProperty("ports").GetProperty("master").GetProperty("destinations").GetArrayLength() == 1;
        }, "the leader port shows its destination");

        Assert.False(cluster.GetProperty("stale").GetBoolean());
        Assert.Equal(DateTimeOffset.Parse("2025-01-01T00:00:00Z"), cluster.GetProperty("last_good_poll").GetDateTimeOffset());
        Assert.Equal(JsonValueKind.Null, cluster.GetProperty("last_error").ValueKind);
        Assert.Equal("http://127.0.0.1:8001", cluster.GetProperty("source").GetString());

        var members = cluster.GetProperty("members").EnumerateArray().ToArray();
        Assert.Equal(["pg0", "pg1", "pg2"], members.Select(m => m.GetProperty("name").GetString()));
        var leader = members[1];
        Assert.Equal("leader", leader.GetProperty("role").GetString());
        Assert.Equal("running", leader.GetProperty("state").GetString());
        Assert.Equal(JsonValueKind.Null, leader.GetProperty("lag").ValueKind);
        Assert.Equal("127.0.0.1", leader.GetProperty("host").GetString());
        Assert.Equal(5431, leader.GetProperty("port").GetInt32());
        Assert.Equal(7, leader.GetProperty("timeline").GetInt64());
        Assert.Equal(JsonValueKind.Object, leader.GetProperty("tags").ValueKind);
        Assert.Equal("sync_standby", members[0].GetProperty("role").GetString());
        Assert.Equal(0, members[0].GetProperty("lag").GetInt64());

        var master = cluster.GetProperty("ports").GetProperty("master");
        Assert.Equal("127.0.0.1:6432", master.GetProperty("listen").GetString());
        Assert.Equal(["leader"], master.GetProperty("roles").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal("main/master", master.GetProperty("yarp_cluster").GetString());
        Assert.Equal(1, master.GetProperty("preconnect").GetInt32());
        var destination = Assert.Single(master.GetProperty("destinations").EnumerateArray());
        Assert.Equal("pg1", destination.GetProperty("id").GetString());
        Assert.Equal("pg1", destination.GetProperty("member").GetString());
        Assert.Equal("tcp://127.0.0.1:5431", destination.GetProperty("address").GetString());
        Assert.Equal("unknown", destination.GetProperty("health").GetString());
        Assert.True(destination.GetProperty("available").GetBoolean());
        Assert.Equal(0, destination.GetProperty("open_sessions").GetInt32());
        Assert.Equal(0, destination.GetProperty("spares").GetInt32());

        var replicas = cluster.GetProperty("ports").GetProperty("replicas");
        Assert.Equal(["pg0", "pg2"], replicas.GetProperty("destinations").EnumerateArray().Select(d => d.GetProperty("id").GetString()));
    }

    [Theory]
    [InlineData("/nope")]
    [InlineData("/clusters/main")]
    public async Task Get_UnknownPath_Returns404(string path)
    {
        Assert.Equal(HttpStatusCode.NotFound, (await _client.GetAsync(path)).StatusCode);
    }

    [Theory]
    [InlineData("POST", "/")]
    [InlineData("PUT", "/update_clusters")]
    [InlineData("DELETE", "/clusters")]
    public async Task Send_WrongMethod_Returns405(string method, string path)
    {
        var response = await _client.SendAsync(new HttpRequestMessage(new HttpMethod(method), path));

        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
    }

    public sealed class Factory : WebApplicationFactory<Program>
    {
        internal FakeRefresher Refresher { get; } = new();

        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            var settings = new Dictionary<string, string>
            {
                ["cluster_update_interval"] = "3",
                ["clusters:main:hosts:0"] = "http://127.0.0.1:8001",
                ["clusters:main:ports:master:listen"] = "127.0.0.1:6432",
                ["clusters:main:ports:master:roles:0"] = "leader",
                ["clusters:main:ports:replicas:listen"] = "127.0.0.1:6433",
                ["clusters:main:ports:replicas:roles:0"] = "sync",
                ["clusters:main:ports:replicas:roles:1"] = "async",
            };
            foreach (var (key, value) in settings)
            {
                builder.UseSetting(key, value);
            }
            builder.ConfigureTestServices(services =>
            {
                services.RemoveAll<IClusterRefresher>();
                services.AddSingleton<IClusterRefresher>(Refresher);
                // The snapshot comes from the test, not from polling Patroni hosts that do not exist: PatroniYarp's own
                // background services go (the web host's own hosted service stays).
                foreach (var service in services.Where(IsPatroniYarpHostedService).ToList())
                {
                    services.Remove(service);
                }
            });
        }
    }

    internal static bool IsPatroniYarpHostedService(ServiceDescriptor service) =>
        service.ServiceType == typeof(IHostedService)
        && (service.ImplementationType ?? service.ImplementationInstance?.GetType() ?? service.ImplementationFactory?.Method.DeclaringType)
            ?.Namespace?.StartsWith("PatroniYarp", StringComparison.Ordinal) == true;

    internal sealed class FakeRefresher : IClusterRefresher
    {
        public ClusterRefreshResult Result { get; set; } = new([], new Dictionary<string, string>());

        public Task<ClusterRefreshResult> RefreshAllAsync(CancellationToken cancellationToken) => Task.FromResult(Result);

        public void RequestPoll(string cluster)
        {
        }
    }
}
