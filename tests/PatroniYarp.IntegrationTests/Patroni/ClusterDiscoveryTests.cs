using System.Net;
using System.Text.Json;
using PatroniYarp.IntegrationTests.Infrastructure;
using PatroniYarp.Testing;

namespace PatroniYarp.IntegrationTests.Patroni;

/// <summary>What /clusters shows of the real cluster, before and after it changes.</summary>
[Collection(RealClusterCollection.Name)]
public sealed class ClusterDiscoveryTests(RealClusterFixture fixture)
{
    private readonly PatroniClusterScript _cluster = fixture.Cluster;

    [Fact]
    public async Task Clusters_RealCluster_ShowsOneLeaderAndTwoServingReplicas()
    {
        var admin = FreePort.Next();
        await using var proxy = await PatroniYarpProcess.StartAsync(
            TestYaml.Config(admin, TestYaml.Port("master", FreePort.Next(), "leader")), admin);

        var members = await DemoMembersAsync(proxy, m => m.Count == 3);

        var leader = await _cluster.LeaderAsync();
        Assert.Equal([leader], members.Where(m => m.Role == "leader").Select(m => m.Name));
        Assert.Equal(2, members.Count(m => m.Role is "replica" or "sync_standby" && m.State is "running" or "streaming"));
        var port = (await proxy.GetJsonAsync("/clusters")).GetProperty("clusters").GetProperty("demo").GetProperty("ports").GetProperty("master");
        Assert.Equal([leader], port.GetProperty("destinations").EnumerateArray().Select(d => d.GetProperty("id").GetString()));
    }

    [Fact]
    public async Task Clusters_AfterSwitchover_ShowsNewLeaderWithinTwoPollIntervals()
    {
        var admin = FreePort.Next();
        await using var proxy = await PatroniYarpProcess.StartAsync(
            TestYaml.Config(admin, TestYaml.Port("master", FreePort.Next(), "leader")), admin);
        var before = await _cluster.LeaderAsync();
        await DemoMembersAsync(proxy, m => m.Any(x => x.Role == "leader" && x.Name == before));

        var after = await _cluster.SwitchoverAsync();

        Assert.NotEqual(before, after);
        // The script returns once Patroni reports the new leader; two poll intervals (1 s each) later we must show it.
        await DemoMembersAsync(proxy, m => m.Any(x => x.Role == "leader" && x.Name == after), TimeSpan.FromSeconds(2 + 2));
    }

    [Fact]
    public async Task Poll_DeadHostListedFirst_DiscoversTheClusterAndUpdateSucceeds()
    {
        var admin = FreePort.Next();
        var dead = $"http://127.0.0.1:{FreePort.Next()}";
        await using var proxy = await PatroniYarpProcess.StartAsync(
            TestYaml.Config(admin, TestYaml.Port("master", FreePort.Next(), "leader"), TestYaml.Hosts(dead)), admin);

        await DemoMembersAsync(proxy, m => m.Count == 3);
        using var update = await proxy.Admin.GetAsync("/update_clusters");

        Assert.Equal(HttpStatusCode.OK, update.StatusCode);
    }

    [Fact]
    public async Task Clusters_EveryHostDead_ReportsStaleWithError()
    {
        var admin = FreePort.Next();
        var dead = $"http://127.0.0.1:{FreePort.Next()}";
        await using var proxy = await PatroniYarpProcess.StartAsync(
            TestYaml.Config(admin, TestYaml.Port("master", FreePort.Next(), "leader"), $"[\"{dead}\"]"), admin);

        using var update = await proxy.Admin.GetAsync("/update_clusters");
        var demo = (await proxy.GetJsonAsync("/clusters")).GetProperty("clusters").GetProperty("demo");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, update.StatusCode);
        Assert.Contains("demo", await update.Content.ReadAsStringAsync());
        Assert.True(demo.GetProperty("stale").GetBoolean());
        Assert.Contains(dead, demo.GetProperty("last_error").GetString());
    }

    internal sealed record Member(string Name, string Role, string State);

    internal static async Task<IReadOnlyList<Member>> DemoMembersAsync(
        PatroniYarpProcess proxy, Func<IReadOnlyList<Member>, bool> until, TimeSpan? timeout = null) =>
        await Eventually.ValueAsync(async () =>
        {
            var json = await proxy.GetJsonAsync("/clusters");
            var members = json.GetProperty("clusters").GetProperty("demo").GetProperty("members").EnumerateArray()
                .Select(m => new Member(m.GetProperty("name").GetString()!, m.GetProperty("role").GetString()!, m.GetProperty("state").GetString()!))
                .ToList();
            return until(members) ? members : null;
        }, timeout ?? TimeSpan.FromSeconds(20), "/clusters to show the expected members");
}
