using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using PatroniYarp.Tcp;
using PatroniYarp.Testing;
using Yarp.ReverseProxy.Configuration;

namespace PatroniYarp.Tests.Tcp;

/// <summary>Sessions held while a port has no destination (leader_wait_timeout, max_waiting), on the real Kestrel host.</summary>
public partial class TcpProxyEndToEndTests
{
    private const string MasterId = "main/master";

    private HeldSessions Held => _app.Services.GetRequiredService<HeldSessions>();

    private static ClusterConfig LeaderCluster(string port, string member, int memberPort)
    {
        var cluster = Cluster(port, (member, memberPort));
        var destination = cluster.Destinations![member];
        return cluster with
        {
            Destinations = new Dictionary<string, DestinationConfig>
            {
                [member] = destination with
                {
                    Metadata = new Dictionary<string, string>(destination.Metadata!) { ["role"] = "leader" },
                },
            },
        };
    }

    [Fact]
    public async Task Held_DestinationAppears_SessionForwardedWithItsFirstBytes()
    {
        _portTemplate = _portTemplate with { LeaderWaitTimeout = 60 };
        var master = FreePort.Next();
        await StartAsync(Options(("master", master)), [Cluster("master")]);

        // Its startup is read, then the session is held with it.
        await using var session = await ConnectAsync(master);
        await TcpTestSupport.PollUntilAsync(() => Held.Waiting(MasterId) == 1, "the session is held");
        await TcpTestSupport.PollUntilAsync(() => _refresher.Requests("main") > 0, "a poll is requested");

        _yarp.Update([], [Cluster("master", ("node1", _echo.Port))]);

        // The startup reaches the member and its echo (the first reply) the client, then the session flows.
        await AssertEchoesAsync(session, "after");
        Assert.Equal(0, Held.Waiting(MasterId));
    }

    [Fact]
    public async Task Held_ClientSendsMoreWhileHeld_BytesReachTheMemberAfterTheStartup()
    {
        _portTemplate = _portTemplate with { LeaderWaitTimeout = 60 };
        var master = FreePort.Next();
        await StartAsync(Options(("master", master)), [Cluster("master")]);
        await using var session = await ConnectAsync(master);
        await TcpTestSupport.PollUntilAsync(() => Held.Waiting(MasterId) == 1, "the session is held");

        // A pipelining client: its bytes wait in the socket, and it is still held (not taken for gone).
        await session.WriteAsync("early"u8.ToArray());
        _yarp.Update([], [Cluster("master", ("node1", _echo.Port))]);

        var echoed = new byte[StartupMessage.Length + 5];
        await session.ReadExactlyAsync(echoed).AsTask().WaitAsync(TcpTestSupport.Timeout);
        Assert.Equal([.. StartupMessage, .. "early"u8.ToArray()], echoed);
        session.StartupEchoed = true;
        await AssertEchoesAsync(session, "after");
    }

    [Fact]
    public async Task Held_NoDestinationWithinLeaderWaitTimeout_Closed()
    {
        _portTemplate = _portTemplate with { LeaderWaitTimeout = 0.2 };
        var master = FreePort.Next();
        await StartAsync(Options(("master", master)), [Cluster("master")]);

        await using var session = await ConnectAsync(master);

        Assert.True(await TcpTestSupport.WaitClosedAsync(session));
        await TcpTestSupport.PollUntilAsync(() => Held.Waiting(MasterId) == 0, "the slot is given back");
        Assert.Equal(0, _echo.Accepted);
    }

    [Fact]
    public async Task Held_MaxWaitingReached_NextSessionRefusedAtOnce_HeldOnesStay()
    {
        _portTemplate = _portTemplate with { LeaderWaitTimeout = 60, MaxWaiting = 2 };
        var master = FreePort.Next();
        await StartAsync(Options(("master", master)), [Cluster("master")]);
        await using var first = await ConnectAsync(master);
        await using var second = await ConnectAsync(master);
        await TcpTestSupport.PollUntilAsync(() => Held.Waiting(MasterId) == 2, "two sessions are held");

        await using var third = await ConnectAsync(master);

        // Refused at once: far sooner than the 60 s hold.
        Assert.True(await TcpTestSupport.WaitClosedAsync(third));
        Assert.Equal(2, Held.Waiting(MasterId));
        _yarp.Update([], [Cluster("master", ("node1", _echo.Port))]);
        await AssertEchoesAsync(first, "first");
        await AssertEchoesAsync(second, "second");
    }

    [Fact]
    public async Task Held_ClientDisconnects_SlotReleased()
    {
        _portTemplate = _portTemplate with { LeaderWaitTimeout = 60, MaxWaiting = 1 };
        var master = FreePort.Next();
        await StartAsync(Options(("master", master)), [Cluster("master")]);
        var leaving = await ConnectAsync(master);
        await TcpTestSupport.PollUntilAsync(() => Held.Waiting(MasterId) == 1, "the session is held");

        await leaving.DisposeAsync();

        await TcpTestSupport.PollUntilAsync(() => Held.Waiting(MasterId) == 0, "the slot is given back");
        // The freed slot holds the next session, which then gets the member; the one that left never reached it.
        await using var next = await ConnectAsync(master);
        await TcpTestSupport.PollUntilAsync(() => Held.Waiting(MasterId) == 1, "the next session is held");
        _yarp.Update([], [Cluster("master", ("node1", _echo.Port))]);
        await AssertEchoesAsync(next, "next");
        Assert.Equal(1, _echo.Accepted);
    }

    [Fact]
    public async Task Held_LeaderRefusesConnect_PollRequestedAndSessionHeldUntilNewLeader_ReplicaNeverTried()
    {
        _portTemplate = _portTemplate with { LeaderWaitTimeout = 60 };
        await using var replica = new LoopbackEcho();
        var master = FreePort.Next();
        var replicas = FreePort.Next();
        var deadLeader = FreePort.Next();
        await StartAsync(Options(("master", master), ("replicas", replicas)),
            [LeaderCluster("master", "old", deadLeader), Cluster("replicas", ("replica", replica.Port))]);

        await using var session = await ConnectAsync(master);

        await TcpTestSupport.PollUntilAsync(() => _refresher.Requests("main") > 0, "a poll is requested");
        await TcpTestSupport.PollUntilAsync(() => Held.Waiting(MasterId) == 1, "the session is held");
        _yarp.Update([], [LeaderCluster("master", "new", _echo.Port), Cluster("replicas", ("replica", replica.Port))]);
        await AssertEchoesAsync(session, "on the new leader");
        Assert.Equal(0, replica.Accepted);
    }

    [Fact]
    public async Task Held_RefusedMemberReactivatedWithoutConfigChange_SessionForwarded()
    {
        _portTemplate = _portTemplate with { LeaderWaitTimeout = 60 };
        _tcpOptions = new TcpProxyOptions { FailedDestinationReactivationPeriod = TimeSpan.FromMilliseconds(300) };
        var master = FreePort.Next();
        var memberPort = FreePort.Next();
        await StartAsync(Options(("master", master)), [LeaderCluster("master", "node1", memberPort)]);

        // The member refuses (its PostgreSQL restarts), then listens again; YARP's configuration never changes.
        await using var session = await ConnectAsync(master);
        await TcpTestSupport.PollUntilAsync(() => Held.Waiting(MasterId) == 1, "the session is held");
        using var restarted = new TcpListener(IPAddress.Loopback, memberPort);
        restarted.Start();

        // Woken by the passive-health reactivation, not by the 60 s bound.
        using var accepted = await restarted.AcceptSocketAsync().WaitAsync(TcpTestSupport.Timeout);
        await session.WriteAsync("x"u8.ToArray());
        var buffer = new byte[1];
        Assert.Equal(1, await accepted.ReceiveAsync(buffer, SocketFlags.None).WaitAsync(TcpTestSupport.Timeout));
    }
}
