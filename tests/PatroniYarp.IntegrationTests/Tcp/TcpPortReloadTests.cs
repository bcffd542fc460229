using Npgsql;
using PatroniYarp.IntegrationTests.Infrastructure;
using PatroniYarp.Testing;

namespace PatroniYarp.IntegrationTests.Tcp;

/// <summary>Ports follow the configuration live (file edit, SIGHUP); SIGTERM drains; sessions elsewhere keep flowing.</summary>
[Collection(RealClusterCollection.Name)]
public sealed class TcpPortReloadTests(RealClusterFixture fixture) : IAsyncLifetime
{
    private readonly PatroniClusterScript _cluster = fixture.Cluster;
    private readonly int _admin = FreePort.Next();
    private readonly int _masterPort = FreePort.Next();
    private readonly int _replicasPort = FreePort.Next();
    private readonly List<NpgsqlConnection> _sessions = [];
    private string _leader = "";

    private string Master => TestYaml.Port("master", _masterPort, "leader");

    private string Replicas => TestYaml.Port("replicas", _replicasPort, "sync, async");

    public async Task InitializeAsync() => _leader = await _cluster.LeaderAsync();

    public async Task DisposeAsync()
    {
        foreach (var session in _sessions)
        {
            await session.DisposeAsync();
        }
    }

    [Fact]
    public async Task Reload_PortAddedByFileEdit_RoutesAtOnceAndOtherSessionsKeepFlowing()
    {
        await using var proxy = await StartAsync(TestYaml.Config(_admin, Master));
        var running = await OpenAsync(_masterPort);

        await proxy.WriteConfigAsync(TestYaml.Config(_admin, Master + Replicas));

        var landing = await Eventually.ValueAsync(() => TryWhereAsync(_replicasPort), TimeSpan.FromSeconds(20), "the added port to route");
        Assert.True(landing.InRecovery);
        Assert.Equal(new Landing(PatroniClusterScript.PortOf(_leader), false), await Pg.WhereAsync(running));
    }

    [Fact]
    public async Task Reload_PortRemoved_ItsSessionsCloseAndOthersKeepFlowing()
    {
        await using var proxy = await StartAsync(TestYaml.Config(_admin, Master + Replicas));
        var onMaster = await OpenAsync(_masterPort);
        var onReplicas = await OpenAsync(_replicasPort);

        await proxy.WriteConfigAsync(TestYaml.Config(_admin, Master));

        await Eventually.UntilAsync(async () => !await Pg.AliveAsync(onReplicas), TimeSpan.FromSeconds(20), "the removed port's session to close");
        await Eventually.UntilAsync(async () => await TryWhereAsync(_replicasPort) is null, TimeSpan.FromSeconds(20), "the removed port to stop listening");
        Assert.True(await Pg.AliveAsync(onMaster));
    }

    [Fact]
    public async Task Reload_PortRolesChanged_SessionsToMembersNoLongerEligibleClose()
    {
        await using var proxy = await StartAsync(TestYaml.Config(_admin, Master));
        var onLeader = await OpenAsync(_masterPort);

        await proxy.WriteConfigAsync(TestYaml.Config(_admin, TestYaml.Port("master", _masterPort, "sync, async")));

        await Eventually.UntilAsync(async () => !await Pg.AliveAsync(onLeader), TimeSpan.FromSeconds(20), "the leader session to close");
        var landing = await Eventually.ValueAsync(() => TryWhereAsync(_masterPort), TimeSpan.FromSeconds(20), "a session on the changed port");
        Assert.True(landing.InRecovery);
    }

    [Fact]
    public async Task Sighup_FileEditedWithoutWatching_PortAddedAndOtherSessionsKeepFlowing()
    {
        // File watching off, as for deployments that swap files in steps: only SIGHUP reloads.
        await using var proxy = await StartAsync(TestYaml.Config(_admin, Master), "--hostBuilder:reloadConfigOnChange=false");
        var running = await OpenAsync(_masterPort);
        await proxy.WriteConfigAsync(TestYaml.Config(_admin, Master + Replicas));

        proxy.Signal(PosixSignalNumber.SIGHUP);

        var landing = await Eventually.ValueAsync(() => TryWhereAsync(_replicasPort), TimeSpan.FromSeconds(20), "the port added by SIGHUP to route");
        Assert.True(landing.InRecovery);
        Assert.True(await Pg.AliveAsync(running));
    }

    [Fact]
    public async Task Routing_DeadPatroniHostListedFirst_SessionsStillReachTheLeader()
    {
        var dead = $"http://127.0.0.1:{FreePort.Next()}";
        await using var proxy = await StartAsync(TestYaml.Config(_admin, Master, TestYaml.Hosts(dead)));

        var landing = await Eventually.ValueAsync(() => TryWhereAsync(_masterPort), TimeSpan.FromSeconds(20), "a leader-port session");

        Assert.Equal(new Landing(PatroniClusterScript.PortOf(_leader), false), landing);
    }

    [Fact]
    public async Task Sigterm_OpenSession_KeepsFlowingDuringDrainThenProcessExitsZero()
    {
        await using var proxy = await StartAsync(TestYaml.Config(_admin, Master) + "\ndrain_timeout: 3\n");
        var running = await OpenAsync(_masterPort);

        proxy.Signal(PosixSignalNumber.SIGTERM);

        Assert.True(await Pg.AliveAsync(running));
        await Eventually.UntilAsync(async () => await TryWhereAsync(_masterPort) is null, TimeSpan.FromSeconds(10), "new sessions to be refused");
        Assert.True(await proxy.WaitForExitAsync(TimeSpan.FromSeconds(30)), "PatroniYarp did not exit after the drain period");
        Assert.Equal(0, proxy.ExitCode);
        Assert.False(await Pg.AliveAsync(running));
    }

    private async Task<PatroniYarpProcess> StartAsync(string yaml, params string[] args)
    {
        var proxy = await PatroniYarpProcess.StartAsync(yaml, _admin, args);
        await ProxyState.WaitForDestinationsAsync(proxy, "master", [_leader]);
        return proxy;
    }

    private async Task<NpgsqlConnection> OpenAsync(int port)
    {
        var session = await Eventually.ValueAsync(async () => await Pg.OpenAsync(port), TimeSpan.FromSeconds(20), $"a session on port {port}");
        _sessions.Add(session);
        return session;
    }

    /// <summary>Where a new session on <paramref name="port"/> lands, or null when the port refuses or closes it.</summary>
    private static async Task<Landing?> TryWhereAsync(int port)
    {
        try
        {
            return await Pg.WhereAsync(port);
        }
        catch (Exception ex) when (ex is NpgsqlException or IOException or TimeoutException)
        {
            return null;
        }
    }
}
