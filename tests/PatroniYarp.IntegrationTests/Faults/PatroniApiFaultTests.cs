using System.Text.Json;
using PatroniYarp.IntegrationTests.Infrastructure;
using PatroniYarp.Testing;

namespace PatroniYarp.IntegrationTests.Faults;

/// <summary>
/// The Patroni REST APIs fail while PostgreSQL keeps serving: all of them down (relays switched off), or a frozen and a
/// slow one listed first. Routing stays on the last known state, visibly stale, and polls stay bounded.
/// </summary>
[Collection(RealClusterCollection.Name)]
public sealed class PatroniApiFaultTests(RealClusterFixture fixture) : IAsyncLifetime
{
    private readonly PatroniClusterScript _cluster = fixture.Cluster;
    private readonly int _admin = FreePort.Next();
    private readonly int _masterPort = FreePort.Next();
    private string _leader = "";

    public async Task InitializeAsync() => _leader = await _cluster.LeaderAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task EveryApiDown_RoutingStaysOnLastKnownStateMarkedStale_CatchesUpWhenTheyReturn()
    {
        var relays = PatroniClusterScript.Members.Select(m => new TcpRelay(new Uri(PatroniClusterScript.ApiUrlOf(m)).Port)).ToList();
        try
        {
            var hosts = "[" + string.Join(", ", relays.Select(r => $"\"{r.Url}\"")) + "]";
            await using var proxy = await PatroniYarpProcess.StartAsync(
                TestYaml.Config(_admin, TestYaml.Port("master", _masterPort, "leader"), hosts) + "\napi_timeout: 1\n", _admin);
            await ProxyState.WaitForDestinationsAsync(proxy, "master", [_leader]);
            await using var running = await Pg.OpenAsync(_masterPort);

            foreach (var relay in relays)
            {
                await relay.OffAsync();
            }

            await Eventually.UntilAsync(async () => (await DemoAsync(proxy)).GetProperty("stale").GetBoolean(), TimeSpan.FromSeconds(20), "the cluster to be marked stale");
            var demo = await DemoAsync(proxy);
            Assert.Contains("every host failed", demo.GetProperty("last_error").GetString());
            Assert.Equal([_leader], await ProxyState.DestinationsAsync(proxy, "master"));
            Assert.Equal(new Landing(PatroniClusterScript.PortOf(_leader), false), await Pg.WhereAsync(_masterPort));
            Assert.True(await Pg.AliveAsync(running));

            foreach (var relay in relays)
            {
                relay.On();
            }

            // Stale clusters are polled in fast mode: one poll after the APIs return, the state is fresh again.
            await Eventually.UntilAsync(async () => !(await DemoAsync(proxy)).GetProperty("stale").GetBoolean(), TimeSpan.FromSeconds(5), "the cluster to be fresh again");
            Assert.Equal([_leader], await ProxyState.DestinationsAsync(proxy, "master"));
        }
        finally
        {
            foreach (var relay in relays)
            {
                await relay.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task FrozenAndSlowApisFirst_PollsStayBoundedByApiTimeout_TheRealHostsAreUsed()
    {
        await using var frozen = new FakeHttpApi(frozen: true);
        await using var slow = new FakeHttpApi(FakeHttpApi.ClusterWithLeaderAt(1), delay: TimeSpan.FromSeconds(10));
        await using var proxy = await PatroniYarpProcess.StartAsync(
            TestYaml.Config(_admin, TestYaml.Port("master", _masterPort, "leader"), TestYaml.Hosts(frozen.Url, slow.Url)) + "\napi_timeout: 1\n", _admin);

        await ProxyState.WaitForDestinationsAsync(proxy, "master", [_leader]);
        var demo = await DemoAsync(proxy);
        Assert.False(demo.GetProperty("stale").GetBoolean());
        Assert.Contains(demo.GetProperty("source").GetString(), PatroniClusterScript.ApiUrls);
        Assert.Equal(new Landing(PatroniClusterScript.PortOf(_leader), false), await Pg.WhereAsync(_masterPort));
        // Each was given up on after api_timeout, once, and moved to the back of the order.
        await proxy.WaitForOutputAsync(line => line.Contains(frozen.Url) && line.Contains("no answer within 1 s"), "the frozen host's failure");
        await proxy.WaitForOutputAsync(line => line.Contains(slow.Url) && line.Contains("no answer within 1 s"), "the slow host's failure");
        using var update = await proxy.Admin.GetAsync("/update_clusters");
        Assert.Equal(System.Net.HttpStatusCode.OK, update.StatusCode);
    }

    private static async Task<JsonElement> DemoAsync(PatroniYarpProcess proxy) =>
        (await proxy.GetJsonAsync("/clusters")).GetProperty("clusters").GetProperty(PatroniClusterScript.Scope);
}
