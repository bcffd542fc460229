using System.Net;
using System.Net.Sockets;
using PatroniYarp.IntegrationTests.Infrastructure;
using PatroniYarp.Testing;

namespace PatroniYarp.IntegrationTests.Faults;

/// <summary>A listen address another process holds: at start-up PatroniYarp exits naming it; at a reload the other ports keep working.</summary>
public sealed class PortInUseTests : IAsyncDisposable
{
    private readonly TcpListener _squatter = new(IPAddress.Loopback, 0);
    private readonly FakeHttpApi _patroni;
    private readonly FakeBackend _backend = new(BackendBehaviour.Silent);

    public PortInUseTests()
    {
        _squatter.Start();
        _patroni = new FakeHttpApi(FakeHttpApi.ClusterWithLeaderAt(_backend.Port));
    }

    private int Taken => ((IPEndPoint)_squatter.LocalEndpoint).Port;

    public async ValueTask DisposeAsync()
    {
        _squatter.Stop();
        await _patroni.DisposeAsync();
        await _backend.DisposeAsync();
    }

    [Fact]
    public async Task Start_PortInUse_ExitsNonZeroNamingThePort()
    {
        var (exitCode, output) = await PatroniYarpProcess.RunToExitAsync(Config(FreePort.Next(), ("master", FreePort.Next()), ("taken", Taken)));

        Assert.Equal(1, exitCode);
        Assert.Contains($"PatroniYarp: cannot listen: Failed to bind to address http://127.0.0.1:{Taken}: address already in use.", output);
    }

    [Fact]
    public async Task Start_AdminPortInUse_ExitsNonZeroNamingThePort()
    {
        var (exitCode, output) = await PatroniYarpProcess.RunToExitAsync(Config(Taken, ("master", FreePort.Next())));

        Assert.Equal(1, exitCode);
        Assert.Contains($"PatroniYarp: cannot listen: Failed to bind to address http://127.0.0.1:{Taken}: address already in use.", output);
    }

    [Fact]
    public async Task Reload_AddsPortInUse_ErrorNamesThePort_RunningPortsAndAdminKeepWorking()
    {
        var admin = FreePort.Next();
        var master = FreePort.Next();
        await using var proxy = await PatroniYarpProcess.StartAsync(Config(admin, ("master", master)), admin);
        await Eventually.UntilAsync(async () => await ForwardsAsync(master), TimeSpan.FromSeconds(20), "the master port to forward");

        await proxy.WriteConfigAsync(Config(admin, ("master", master), ("taken", Taken)));

        await proxy.WaitForOutputAsync(line => line.Contains($"127.0.0.1:{Taken}") && line.Contains("bind", StringComparison.OrdinalIgnoreCase),
            $"an error naming 127.0.0.1:{Taken}");
        Assert.True(await ForwardsAsync(master));
        using var root = await proxy.Admin.GetAsync("/");
        Assert.True(root.IsSuccessStatusCode);
        Assert.False(proxy.HasExited);
    }

    private async Task<bool> ForwardsAsync(int port)
    {
        var before = _backend.Accepted;
        using var client = await PgWire.ConnectAsync(port);
        await Eventually.UntilAsync(() => Task.FromResult(_backend.Accepted > before), TimeSpan.FromSeconds(10), $"port {port} to forward a session");
        return true;
    }

    private string Config(int admin, params (string Name, int Port)[] ports) => $"""
        cluster_update_interval: 1
        listen_address: "127.0.0.1:{admin}"
        clusters:
          fake:
            hosts: ["{_patroni.Url}"]
            ports:
        {string.Concat(ports.Select(p => $"      {p.Name}: {{listen: \"127.0.0.1:{p.Port}\", roles: [leader], preconnect: 0}}\n"))}
        """;
}
