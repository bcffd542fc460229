using System.Net;
using System.Net.Sockets;
using PatroniYarp.Tcp;
using PatroniYarp.Testing;

namespace PatroniYarp.Tests.Tcp;

/// <summary>A socket served by the TCP loop: connects, waits and their ends.</summary>
public sealed class EventLoopSocketTests : IDisposable
{
    private readonly SocketEventLoop _loop = TcpTestSupport.NewLoop();

    public void Dispose() => _loop.Dispose();

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("::1")]
    public async Task ConnectAsync_NothingListens_ConnectionRefused(string address)
    {
        var port = FreePort.Next(IPAddress.Parse(address));

        var ex = await Assert.ThrowsAsync<SocketException>(
            () => EventLoopSocket.ConnectAsync(_loop, new IPEndPoint(IPAddress.Parse(address), port), CancellationToken.None));

        Assert.Equal(SocketError.ConnectionRefused, ex.SocketErrorCode);
    }

    [Theory]
    [InlineData("127.0.0.1", false)]
    [InlineData("::1", false)]
    [InlineData("127.0.0.1", true)]
    public async Task ConnectAsync_Listening_ConnectedToThatAddress(string address, bool byName)
    {
        using var listener = new TcpListener(IPAddress.Parse(address), 0);
        listener.Start();
        var accept = listener.AcceptSocketAsync();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;

        using var socket = await EventLoopSocket.ConnectAsync(_loop,
            byName ? new DnsEndPoint("localhost", port) : new IPEndPoint(IPAddress.Parse(address), port), CancellationToken.None);
        using var accepted = await accept.WaitAsync(TcpTestSupport.Timeout);

        Assert.Equal(accepted.LocalEndPoint, socket.RemoteEndPoint);
        await socket.SendAsync("ping"u8.ToArray(), CancellationToken.None);
        var buffer = new byte[4];
        Assert.Equal(4, await accepted.ReceiveAsync(buffer, SocketFlags.None));
        Assert.Equal("ping"u8.ToArray(), buffer);
    }

    [Fact]
    public async Task ReceiveAsync_DataComesLater_WaitsAndReceivesIt()
    {
        var (peer, socket) = await TcpTestSupport.LoopPairAsync(_loop);
        using var proxy = socket;
        using (peer)
        {
            var buffer = new byte[16];
            var receive = socket.ReceiveAsync(buffer, CancellationToken.None).AsTask();
            Assert.False(receive.IsCompleted);

            await peer.SendAsync("late"u8.ToArray(), SocketFlags.None);

            Assert.Equal(4, await receive.WaitAsync(TcpTestSupport.Timeout));
        }
    }

    [Fact]
    public async Task WaitReadableAsync_Cancelled_OperationCanceledAndTheNextWaitWorks()
    {
        var (peer, socket) = await TcpTestSupport.LoopPairAsync(_loop);
        using var proxy = socket;
        using (peer)
        {
            using var cancel = new CancellationTokenSource();
            var wait = socket.WaitReadableAsync(cancel.Token).AsTask();
            await cancel.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => wait.WaitAsync(TcpTestSupport.Timeout));

            var next = socket.WaitReadableAsync(CancellationToken.None).AsTask();
            await peer.SendAsync("x"u8.ToArray(), SocketFlags.None);
            await next.WaitAsync(TcpTestSupport.Timeout);
        }
    }

    [Fact]
    public async Task WaitReadableAsync_SocketDisposed_ObjectDisposed()
    {
        var (peer, socket) = await TcpTestSupport.LoopPairAsync(_loop);
        using (peer)
        {
            var wait = socket.WaitReadableAsync(CancellationToken.None).AsTask();

            socket.Dispose();

            await Assert.ThrowsAsync<ObjectDisposedException>(() => wait.WaitAsync(TcpTestSupport.Timeout));
        }
    }

    [Fact]
    public async Task Dispose_Connected_PeerSeesAnOrderlyEndAfterTheData()
    {
        var (peer, socket) = await TcpTestSupport.LoopPairAsync(_loop);
        using (peer)
        {
            await socket.SendAsync("last"u8.ToArray(), CancellationToken.None);

            socket.Dispose();

            // A FIN, not a reset: what was sent arrives, then the end (a reset would throw ConnectionReset).
            var buffer = new byte[16];
            Assert.Equal(4, await peer.ReceiveAsync(buffer, SocketFlags.None));
            Assert.Equal(0, await peer.ReceiveAsync(buffer, SocketFlags.None));
        }
    }
}
