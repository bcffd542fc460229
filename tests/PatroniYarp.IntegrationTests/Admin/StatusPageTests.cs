using PatroniYarp.IntegrationTests.Infrastructure;
using PatroniYarp.Testing;

namespace PatroniYarp.IntegrationTests.Admin;

/// <summary>
/// GET /ui in a real browser against the real cluster: it shows the leader, and after a switchover the new one; a port
/// shows its preconnect (1 by default) and, once a client has come, its spare.
/// </summary>
[Collection(RealClusterCollection.Name)]
public sealed class StatusPageTests(RealClusterFixture fixture)
{
    private readonly PatroniClusterScript _cluster = fixture.Cluster;

    [Fact]
    public async Task StatusPage_Switchover_ShowsLeaderThenNewLeader()
    {
        var leader = await _cluster.LeaderAsync();
        var admin = FreePort.Next();
        var masterPort = FreePort.Next();
        await using var proxy = await PatroniYarpProcess.StartAsync(TestYaml.Config(admin,
            TestYaml.Port("master", masterPort, "leader") +
            TestYaml.Port("replicas", FreePort.Next(), "sync, async", "max_lag_in_bytes: 16777216")), admin);
        await ProxyState.WaitForDestinationsAsync(proxy, "master", [leader]);
        await using var session = await Pg.OpenAsync(masterPort);

        await using var browser = await StatusPageBrowser.OpenAsync($"http://127.0.0.1:{admin}/ui");
        await browser.WaitForLeaderAsync("demo", leader);
        await browser.WaitForPortTextAsync("master", "preconnect 1");
        await browser.WaitForPortTextAsync("master", "+ 1 spare");
        // Set PATRONIYARP_UI_SCREENSHOT to a path to keep a picture of the page (docs/status-page.png was made so).
        if (Environment.GetEnvironmentVariable("PATRONIYARP_UI_SCREENSHOT") is { Length: > 0 } screenshot)
        {
            await browser.ScreenshotAsync(screenshot);
        }

        var candidate = PatroniClusterScript.Members.First(m => m != leader);
        await _cluster.SwitchoverAsync(candidate);

        await browser.WaitForLeaderAsync("demo", candidate);
    }
}
