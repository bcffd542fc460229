using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using PatroniYarp.Tcp;
using PatroniYarp.Testing;

namespace PatroniYarp.Tests.Tcp;

/// <summary>preconnect: spare backend connections opened ahead of clients (<see cref="SpareBackends"/>).</summary>
public partial class TcpProxyEndToEndTests
{
    private SpareBackends Spares => _app.Services.GetRequiredService<SpareBackends>();

    private async Task<int> StartWithSpareAsync(params (string Member, int Port)[] members)
    {
        _portTemplate = _portTemplate with { Preconnect = 1 };
        var master = FreePort.Next();
        await StartAsync(Options(("master", master)), [Cluster("master", members)]);
        return master;
    }

    [Fact]
    public async Task Preconnect_One_SessionStartsOnTheConnectionOpenedBeforeIt()
    {
        var master = await StartWithSpareAsync(("node1", _echo.Port));
        await TcpTestSupport.PollUntilAsync(() => Spares.Ready(MasterId, "node1") == 1 && _echo.Accepted == 1, "a spare is open before any client");

        await using var session = await ConnectAsync(master);
        await AssertEchoesAsync(session, "on the spare");

        // The member's first connection, opened before the client came, carried the session.
        Assert.True(_echo.HasReceived(0));
        await TcpTestSupport.PollUntilAsync(() => Spares.Ready(MasterId, "node1") == 1 && _echo.Accepted == 2, "the spare is replaced");
        Assert.False(_echo.HasReceived(1));
    }

    [Fact]
    public async Task Preconnect_MemberLeavesThePort_ItsSpareIsClosedAndTheNewMemberGetsOne()
    {
        await using var next = new LoopbackEcho();
        var master = await StartWithSpareAsync(("old", _echo.Port));
        await TcpTestSupport.PollUntilAsync(() => Spares.Ready(MasterId, "old") == 1 && _echo.Accepted == 1, "a spare on the old member");

        _yarp.Update([], [Cluster("master", ("new", next.Port))]);

        await TcpTestSupport.PollUntilAsync(() => _echo.HasEnded(0), "the old member's spare is closed");
        await TcpTestSupport.PollUntilAsync(() => next.Accepted == 1 && Spares.Ready(MasterId, "new") == 1, "a spare on the new member");
        await using var session = await ConnectAsync(master);
        await AssertEchoesAsync(session, "on the new member");
        Assert.False(_echo.HasReceived(0));
    }

    [Fact]
    public async Task Preconnect_MemberClosesTheSpare_ItIsReplaced()
    {
        var master = await StartWithSpareAsync(("node1", _echo.Port));
        await TcpTestSupport.PollUntilAsync(() => Spares.Ready(MasterId, "node1") == 1 && _echo.Accepted == 1, "a spare is open");

        // As PostgreSQL does when authentication_timeout passes without a startup.
        _echo.Close(0);

        await TcpTestSupport.PollUntilAsync(() => _echo.Accepted == 2 && Spares.Ready(MasterId, "node1") == 1, "a new spare replaces it");
        await using var session = await ConnectAsync(master);
        await AssertEchoesAsync(session, "after the replacement");
        Assert.True(_echo.HasReceived(1));
    }

    [Fact]
    public async Task Preconnect_SpareClosesWhenTheStartupArrives_SessionConnectsAfreshAndTheMemberStaysIn()
    {
        await using var member = new LoopbackEcho(closeFirstOnData: true);
        var master = await StartWithSpareAsync(("node1", member.Port));
        await TcpTestSupport.PollUntilAsync(() => Spares.Ready(MasterId, "node1") == 1, "a spare is open");

        await using var first = await ConnectAsync(master);
        await AssertEchoesAsync(first, "on a fresh connection");

        Assert.True(member.HasReceived(0));
        Assert.DoesNotContain(_logs.Entries, e => e.Level >= LogLevel.Warning);
        Assert.Equal(0, _refresher.Requests("main"));
        // Not marked unhealthy: with it the only member, the next session would have nowhere to go.
        await using var second = await ConnectAsync(master);
        await AssertEchoesAsync(second, "the member still serves");
    }

    [Fact]
    public async Task Preconnect_ClientSendsNothing_SpareClosedUnusedAndNoSessionLeftReserved()
    {
        var master = await StartWithSpareAsync(("node1", _echo.Port));
        await TcpTestSupport.PollUntilAsync(() => Spares.Ready(MasterId, "node1") == 1, "a spare is open");

        using (var silent = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            await silent.ConnectAsync(IPAddress.Loopback, master);
            await TcpTestSupport.PollUntilAsync(() => _echo.Accepted == 2, "the spare was taken and replaced");
        }

        await TcpTestSupport.PollUntilAsync(() => _echo.HasEnded(0), "the taken spare is closed");
        Assert.False(_echo.HasReceived(0));
        var counter = _app.Services.GetRequiredService<SessionRegistry>().GetCounter(MasterId, "node1");
        await TcpTestSupport.PollUntilAsync(() => counter.Value == 0, "no session is left reserved on the member");
    }

    [Fact]
    public async Task Preconnect_ReloadedToZero_SparesClosed()
    {
        var master = await StartWithSpareAsync(("node1", _echo.Port));
        await TcpTestSupport.PollUntilAsync(() => Spares.Ready(MasterId, "node1") == 1, "a spare is open");

        _portTemplate = _portTemplate with { Preconnect = 0 };
        _options.Set(Options(("master", master)));

        await TcpTestSupport.PollUntilAsync(() => _echo.HasEnded(0), "the spare is closed");
        Assert.Equal(0, Spares.Ready(MasterId, "node1"));
        await using var session = await ConnectAsync(master);
        await AssertEchoesAsync(session, "without a spare");
    }

    [Fact]
    public async Task Preconnect_HostStops_SpareClosedAtOnceWhileSessionsDrain()
    {
        _portTemplate = _portTemplate with { Preconnect = 1 };
        var master = FreePort.Next();
        await StartAsync(Options(("master", master)) with { DrainTimeout = 60 }, [Cluster("master", ("node1", _echo.Port))]);
        var session = await ConnectAsync(master);
        await AssertEchoesAsync(session, "before stop");
        await TcpTestSupport.PollUntilAsync(() => _echo.Accepted == 2 && Spares.Ready(MasterId, "node1") == 1, "the spare is replaced");

        var stopping = _app.StopAsync();

        await TcpTestSupport.PollUntilAsync(() => _echo.HasEnded(1), "the spare is closed as the drain starts");
        await AssertEchoesAsync(session, "the session drains on");
        await session.DisposeAsync();
        await stopping.WaitAsync(TcpTestSupport.Timeout);
    }
}
