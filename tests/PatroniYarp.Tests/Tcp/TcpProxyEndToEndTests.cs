using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using PatroniYarp.Configuration;
using PatroniYarp.Patroni;
using PatroniYarp.Tests.Configuration;
using PatroniYarp.Tcp;
using PatroniYarp.Testing;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Health;

namespace PatroniYarp.Tests.Tcp;

/// <summary>A real Kestrel host with AddTcpProxy and YARP fed from memory, forwarding to loopback echo servers.</summary>
public partial class TcpProxyEndToEndTests : IAsyncLifetime
{
    private readonly int _adminPort = FreePort.Next();
    private readonly LoopbackEcho _echo = new();
    private TestOptionsMonitor<ProxyOptions> _options = null!;
    private WebApplication _app = null!;
    private InMemoryConfigProvider _yarp = null!;

    /// <summary>
    /// What every port of <see cref="Options"/> is made from; short holds so that tests of closing stay quick, and no
    /// spares (preconnect) unless a test asks for them, so a backend sees only the sessions a test opens.
    /// </summary>
    private PortOptions _portTemplate = new() { Roles = ["any"], LeaderWaitTimeout = 0.5, Preconnect = 0 };

    private TcpProxyOptions _tcpOptions = new();

    /// <summary>The host's clock, when a test drives it (null: the system's).</summary>
    private TimeProvider? _time;

    private readonly RecordingRefresher _refresher = new();

    private readonly CapturingLoggerProvider _logs = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
        await _echo.DisposeAsync();
    }

    private async Task StartAsync(ProxyOptions options, IReadOnlyList<ClusterConfig> clusters)
    {
        _options = new TestOptionsMonitor<ProxyOptions>(options);
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing" });
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(_logs);
        builder.Services.AddSingleton<IOptionsMonitor<ProxyOptions>>(_options);
        builder.Services.AddSingleton<IOptionsMonitor<TcpProxyOptions>>(new TestOptionsMonitor<TcpProxyOptions>(_tcpOptions));
        builder.Services.AddSingleton<IClusterRefresher>(_refresher);
        if (_time is not null)
        {
            builder.Services.AddSingleton(_time);
        }
        builder.Services.AddReverseProxy().LoadFromMemory([], clusters);
        builder.AddTcpProxy();
        _app = builder.Build();
        _app.MapReverseProxy();
        await _app.StartAsync();
        _yarp = _app.Services.GetRequiredService<InMemoryConfigProvider>();
    }

    private ProxyOptions Options(params (string Name, int Port)[] ports) => new()
    {
        ListenAddress = $"127.0.0.1:{_adminPort}",
        DrainTimeout = 1,
        Clusters = new Dictionary<string, ClusterOptions>
        {
            ["main"] = new()
            {
                Hosts = ["http://127.0.0.1:8008"],
                Ports = ports.ToDictionary(p => p.Name, p => _portTemplate with { Listen = $"127.0.0.1:{p.Port}" }),
            },
        },
    };

    private static ClusterConfig Cluster(string port, params (string Member, int Port)[] destinations) => new()
    {
        ClusterId = $"main/{port}",
        Destinations = destinations.ToDictionary(d => d.Member, d => new DestinationConfig
        {
            Address = $"tcp://127.0.0.1:{d.Port}",
            Metadata = new Dictionary<string, string> { ["member"] = d.Member },
        }),
        HealthCheck = new HealthCheckConfig
        {
            AvailableDestinationsPolicy = HealthCheckConstants.AvailableDestinations.HealthyAndUnknown,
            Passive = new PassiveHealthCheckConfig { Enabled = true, Policy = HealthCheckConstants.PassivePolicy.TransportFailureRate },
        },
    };

    /// <summary>A PostgreSQL v3 StartupMessage (user "test"): the proxy reads it before it picks a member.</summary>
    internal static readonly byte[] StartupMessage = [0, 0, 0, 19, 0, 3, 0, 0, .. "user\0test\0\0"u8];

    /// <summary>Connects and sends <see cref="StartupMessage"/>, as every PostgreSQL client does first.</summary>
    private static async Task<ClientSession> ConnectAsync(int port)
    {
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(IPAddress.Loopback, port);
        var session = new ClientSession(client);
        await session.WriteAsync(StartupMessage);
        return session;
    }

    /// <summary>Sends text and reads it back; the first time, the echo of the startup comes first (its first reply).</summary>
    private static async Task AssertEchoesAsync(ClientSession stream, string text)
    {
        if (!stream.StartupEchoed)
        {
            var startup = new byte[StartupMessage.Length];
            await stream.ReadExactlyAsync(startup).AsTask().WaitAsync(TcpTestSupport.Timeout);
            Assert.Equal(StartupMessage, startup);
            stream.StartupEchoed = true;
        }
        var bytes = Encoding.ASCII.GetBytes(text);
        await stream.WriteAsync(bytes);
        var buffer = new byte[bytes.Length];
        await stream.ReadExactlyAsync(buffer).AsTask().WaitAsync(TcpTestSupport.Timeout);
        Assert.Equal(text, Encoding.ASCII.GetString(buffer));
    }

    /// <summary>A client connection that knows whether the echo of its startup was read yet.</summary>
    private sealed class ClientSession(Socket socket) : NetworkStream(socket, ownsSocket: true)
    {
        public bool StartupEchoed { get; set; }
    }

    private static async Task<bool> EchoesAsync(int port)
    {
        try
        {
            await using var stream = await ConnectAsync(port);
            await AssertEchoesAsync(stream, "ping");
            return true;
        }
        catch (Exception ex) when (ex is SocketException or IOException)
        {
            return false;
        }
    }

    [Fact]
    public async Task Proxy_ConfigChanges_CloseExactlyTheAffectedSessions()
    {
        var master = FreePort.Next();
        var replicas = FreePort.Next();
        await StartAsync(Options(("master", master)), [Cluster("master", ("node1", _echo.Port))]);

        await using var masterSession = await ConnectAsync(master);
        await AssertEchoesAsync(masterSession, "hello");

        // A port added by a configuration change listens and routes at once; the running session is untouched.
        _yarp.Update([], [Cluster("master", ("node1", _echo.Port)), Cluster("replicas", ("node1", _echo.Port))]);
        _options.Set(Options(("master", master), ("replicas", replicas)));
        await TcpTestSupport.PollUntilAsync(() => EchoesAsync(replicas), "the added port forwards");
        await using var replicaSession = await ConnectAsync(replicas);
        await AssertEchoesAsync(replicaSession, "replica");
        await AssertEchoesAsync(masterSession, "still here");

        // The member leaves the master port only: its master session closes, its replicas session keeps flowing.
        _yarp.Update([], [Cluster("master"), Cluster("replicas", ("node1", _echo.Port))]);
        Assert.True(await TcpTestSupport.WaitClosedAsync(masterSession));
        await AssertEchoesAsync(replicaSession, "untouched");

        // With no eligible member the master port answers nothing: the connection is held, then closed after
        // leader_wait_timeout.
        await using (var refused = await ConnectAsync(master))
        {
            Assert.True(await TcpTestSupport.WaitClosedAsync(refused));
        }

        // A removed port stops listening and its sessions close.
        _options.Set(Options(("master", master)));
        Assert.True(await TcpTestSupport.WaitClosedAsync(replicaSession));
        await TcpTestSupport.PollUntilAsync(async () => !await EchoesAsync(replicas), "the removed port stops forwarding");
        // Closing a session closes its sockets first; the handler then unregisters it.
        await TcpTestSupport.PollUntilAsync(() => _app.Services.GetRequiredService<SessionRegistry>().Snapshot().Count == 0,
            "no session is left registered");
    }

    [Fact]
    public async Task Proxy_MemberRefusesConnect_NextMemberServesAndSessionsAreListed()
    {
        var port = FreePort.Next();
        var dead = FreePort.Next();
        await StartAsync(Options(("replicas", port)), [Cluster("replicas", ("dead", dead), ("node1", _echo.Port))]);

        var sessions = new List<NetworkStream>();
        for (var i = 0; i < 4; i++)
        {
            var stream = await ConnectAsync(port);
            sessions.Add(stream);
            await AssertEchoesAsync(stream, $"session {i}");
        }

        var registry = _app.Services.GetRequiredService<SessionRegistry>();
        var snapshot = registry.Snapshot();
        Assert.Equal(4, snapshot.Count);
        Assert.All(snapshot, s => Assert.Equal(("main/replicas", "node1"), (s.Port, s.Member)));
        Assert.Equal(4, registry.GetOpenSessions("main/replicas", "node1"));
        Assert.Equal(0, registry.GetOpenSessions("main/replicas", "dead"));

        foreach (var stream in sessions)
        {
            await stream.DisposeAsync();
        }
        await TcpTestSupport.PollUntilAsync(() => registry.Count == 0, "closed sessions leave the registry");
        Assert.Equal(0, registry.GetOpenSessions("main/replicas", "node1"));
    }

    [Fact]
    public async Task Proxy_HostStops_SessionsClosedAfterDrain()
    {
        var port = FreePort.Next();
        await StartAsync(Options(("master", port)), [Cluster("master", ("node1", _echo.Port))]);
        await using var session = await ConnectAsync(port);
        await AssertEchoesAsync(session, "before stop");

        var stopping = _app.StopAsync();

        Assert.True(await TcpTestSupport.WaitClosedAsync(session));
        await stopping.WaitAsync(TcpTestSupport.Timeout);
        Assert.Equal(TimeSpan.FromSeconds(6), _app.Services.GetRequiredService<IOptions<HostOptions>>().Value.ShutdownTimeout);
    }
}
