using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using PatroniYarp.Tcp;
using PatroniYarp.Testing;

namespace PatroniYarp.Tests.Tcp;

/// <summary>preconnect: spare backend connections opened ahead of clients (<see cref="SpareBackends"/>).</summary>
public partial class TcpProxyEndToEndTests
{
    private SpareBackends Spares => _app.Services.GetRequiredService<SpareBackends>();

    /// <summary>
    /// Starts a port with preconnect: 1 and has a first client come and go, so that a spare is open.
    /// </summary>
    /// <returns>The port, and the index of the member's connection that is the spare (it may open before or after the
    /// first client's own).</returns>
    private async Task<(int Port, int Spare)> StartWithSpareAsync(LoopbackEcho member, string memberName = "node1")
    {
        _portTemplate = _portTemplate with { Preconnect = 1 };
        var master = FreePort.Next();
        await StartAsync(Options(("master", master)), [Cluster("master", (memberName, member.Port))]);
        // A port opens no spare before its first client.
        Assert.Equal(0, Spares.Ready(MasterId, memberName));
        await using (var first = await ConnectAsync(master))
        {
            await AssertEchoesAsync(first, "the port's first client");
        }
        await TcpTestSupport.PollUntilAsync(() => Spares.Ready(MasterId, memberName) == 1 && member.Accepted == 2,
            "a spare is open behind the first client");
        return (master, Assert.Single(member.Silent()));
    }

    [Fact]
    public async Task Preconnect_One_FirstClientConnectsAfreshAndTheNextStartsOnTheSpareOpenedBehindIt()
    {
        var (master, spare) = await StartWithSpareAsync(_echo);

        await using var session = await ConnectAsync(master);
        await AssertEchoesAsync(session, "on the spare");

        Assert.True(_echo.HasReceived(spare));
        await TcpTestSupport.PollUntilAsync(() => Spares.Ready(MasterId, "node1") == 1 && _echo.Accepted == 3, "the spare is replaced");
        Assert.False(_echo.HasReceived(2));
    }

    [Fact]
    public async Task Preconnect_PortQuietForMaxAge_SparesClosedAndNoneOpenedUntilTheNextClient()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        _time = time;
        var (master, spare) = await StartWithSpareAsync(_echo);

        time.Advance(SpareBackends.MaxAge + SpareBackends.RetryPeriod);

        await TcpTestSupport.PollUntilAsync(() => _echo.HasEnded(spare), "the quiet port's spare is closed");
        // The timer that would replace an aged spare runs again: a quiet port opens none.
        time.Advance(SpareBackends.RetryPeriod);
        time.Advance(SpareBackends.RetryPeriod);
        Assert.Equal(0, Spares.Ready(MasterId, "node1"));
        Assert.Equal(2, _echo.Accepted);

        await using var session = await ConnectAsync(master);
        await AssertEchoesAsync(session, "connected afresh");
        await TcpTestSupport.PollUntilAsync(() => Spares.Ready(MasterId, "node1") == 1 && _echo.Accepted == 4, "clients come again: a spare follows");
        Assert.Contains(Assert.Single(_echo.Silent()), new[] { 2, 3 });
    }

    [Fact]
    public async Task Preconnect_MemberLeavesThePort_ItsSpareIsClosedAndTheNewMemberGetsOne()
    {
        await using var next = new LoopbackEcho();
        var (master, spare) = await StartWithSpareAsync(_echo, "old");

        _yarp.Update([], [Cluster("master", ("new", next.Port))]);

        await TcpTestSupport.PollUntilAsync(() => _echo.HasEnded(spare), "the old member's spare is closed");
        await TcpTestSupport.PollUntilAsync(() => next.Accepted == 1 && Spares.Ready(MasterId, "new") == 1, "a spare on the new member");
        await using var session = await ConnectAsync(master);
        await AssertEchoesAsync(session, "on the new member");
        Assert.False(_echo.HasReceived(spare));
        Assert.True(next.HasReceived(0));
    }

    [Fact]
    public async Task Preconnect_MemberClosesTheSpare_ItIsReplaced()
    {
        var (master, spare) = await StartWithSpareAsync(_echo);

        // As PostgreSQL does when authentication_timeout passes without a startup.
        _echo.Close(spare);

        await TcpTestSupport.PollUntilAsync(() => _echo.Accepted == 3 && Spares.Ready(MasterId, "node1") == 1, "a new spare replaces it");
        await using var session = await ConnectAsync(master);
        await AssertEchoesAsync(session, "after the replacement");
        Assert.True(_echo.HasReceived(2));
    }

    [Fact]
    public async Task Preconnect_SpareClosesWhenTheStartupArrives_SessionConnectsAfreshAndTheMemberStaysIn()
    {
        await using var member = new LoopbackEcho();
        var (master, spare) = await StartWithSpareAsync(member);
        member.CloseOnData(spare);

        await using var first = await ConnectAsync(master);
        await AssertEchoesAsync(first, "on a fresh connection");

        Assert.True(member.HasReceived(spare));
        Assert.DoesNotContain(_logs.Entries, e => e.Level >= LogLevel.Warning);
        Assert.Equal(0, _refresher.Requests("main"));
        // Not marked unhealthy: with it the only member, the next session would have nowhere to go.
        await using var second = await ConnectAsync(master);
        await AssertEchoesAsync(second, "the member still serves");
    }

    [Fact]
    public async Task Preconnect_ClientSendsNothing_SpareGivenBackUnusedForTheNextClient()
    {
        var (master, spare) = await StartWithSpareAsync(_echo);
        var counter = _app.Services.GetRequiredService<SessionRegistry>().GetCounter(MasterId, "node1");

        // A TCP health check: connects, says nothing, leaves. Its spare is taken at accept and replaced at once.
        using (var silent = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            await silent.ConnectAsync(IPAddress.Loopback, master);
            await TcpTestSupport.PollUntilAsync(() => _echo.Accepted == 3 && Spares.Ready(MasterId, "node1") == 1,
                "the spare is taken at accept and replaced");
        }

        await TcpTestSupport.PollUntilAsync(() => Spares.Ready(MasterId, "node1") == 2 && counter.Value == 0,
            "the spare is back beside its replacement, and no session is left reserved on the member");
        Assert.False(_echo.HasEnded(spare));
        Assert.False(_echo.HasReceived(spare));
        // The next client takes one of the two; none is opened behind it while one is left.
        await using var session = await ConnectAsync(master);
        await AssertEchoesAsync(session, "on a spare");
        await TcpTestSupport.PollUntilAsync(() => Spares.Ready(MasterId, "node1") == 1, "one spare left");
        Assert.Equal(3, _echo.Accepted);
    }

    [Fact]
    public async Task Preconnect_ClientNeverSpeaksPostgres_PortOpensNoSpare()
    {
        _portTemplate = _portTemplate with { Preconnect = 1 };
        var master = FreePort.Next();
        await StartAsync(Options(("master", master)), [Cluster("master", ("node1", _echo.Port))]);

        // A port scan or an HTTP check on the PostgreSQL port: the port is not in use by a PostgreSQL client.
        using (var http = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            await http.ConnectAsync(IPAddress.Loopback, master);
            await http.SendAsync("GET / HTTP/1.0\r\n\r\n"u8.ToArray());
            await TcpTestSupport.PollUntilAsync(() => _logs.Entries.Any(e => e.Message.Contains("closing the session from")),
                "the proxy to turn it away");
        }

        Assert.Equal(0, Spares.Ready(MasterId, "node1"));
        Assert.Equal(0, _echo.Accepted);
    }

    [Fact]
    public async Task Preconnect_ReloadedToZero_SparesClosed()
    {
        var (master, spare) = await StartWithSpareAsync(_echo);

        _portTemplate = _portTemplate with { Preconnect = 0 };
        _options.Set(Options(("master", master)));

        await TcpTestSupport.PollUntilAsync(() => _echo.HasEnded(spare), "the spare is closed");
        Assert.Equal(0, Spares.Ready(MasterId, "node1"));
        await using var session = await ConnectAsync(master);
        await AssertEchoesAsync(session, "without a spare");
        Assert.True(_echo.HasReceived(2));
    }

    [Fact]
    public async Task Preconnect_HostStops_SpareClosedAtOnceWhileSessionsDrain()
    {
        _portTemplate = _portTemplate with { Preconnect = 1 };
        var master = FreePort.Next();
        await StartAsync(Options(("master", master)) with { DrainTimeout = 60 }, [Cluster("master", ("node1", _echo.Port))]);
        var session = await ConnectAsync(master);
        await AssertEchoesAsync(session, "before stop");
        await TcpTestSupport.PollUntilAsync(() => _echo.Accepted == 2 && Spares.Ready(MasterId, "node1") == 1, "a spare follows the client");
        var spare = Assert.Single(_echo.Silent());

        var stopping = _app.StopAsync();

        await TcpTestSupport.PollUntilAsync(() => _echo.HasEnded(spare), "the spare is closed as the drain starts");
        await AssertEchoesAsync(session, "the session drains on");
        await session.DisposeAsync();
        await stopping.WaitAsync(TcpTestSupport.Timeout);
    }
}
