using System.Net.Sockets;
using System.Text;
using PatroniYarp.Tcp;

namespace PatroniYarp.Tests.Tcp;

/// <summary>The forwarder between two loopback socket pairs: the client's and the backend's.</summary>
public class TcpForwarderTests : IAsyncLifetime
{
    private readonly SessionRegistry _registry = new(TimeProvider.System);
    private readonly SocketEventLoop _loop = TcpTestSupport.NewLoop();
    private Socket _client = null!;
    private EventLoopSocket _proxyClientSide = null!;
    private EventLoopSocket _proxyBackendSide = null!;
    private Socket _backend = null!;
    private TcpSession _session = null!;

    public async Task InitializeAsync()
    {
        (_client, _proxyClientSide) = await TcpTestSupport.LoopPairAsync(_loop);
        (_backend, _proxyBackendSide) = await TcpTestSupport.LoopPairAsync(_loop);
        _session = TcpTestSupport.NewSession(_registry, new TcpPortEndpoint("main", "master", "http://127.0.0.1:6432"), "a");
    }

    public Task DisposeAsync()
    {
        foreach (var socket in new IDisposable[] { _client, _proxyClientSide, _proxyBackendSide, _backend })
        {
            socket.Dispose();
        }
        _session.Dispose();
        _loop.Dispose();
        return Task.CompletedTask;
    }

    private Task Forward() =>
        TcpForwarder.ForwardAsync(_proxyClientSide, _proxyBackendSide, _session);

    private static async Task<string> ReceiveAsync(Socket socket, int length)
    {
        var buffer = new byte[length];
        var read = 0;
        while (read < length)
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory(read), SocketFlags.None).AsTask().WaitAsync(TcpTestSupport.Timeout);
            Assert.NotEqual(0, n);
            read += n;
        }
        return Encoding.ASCII.GetString(buffer);
    }

    /// <summary>True when the socket's peer closed it (FIN or reset), after whatever it sent before.</summary>
    private static async Task<bool> ClosedAsync(Socket socket)
    {
        var buffer = new byte[64];
        try
        {
            while (await socket.ReceiveAsync(buffer.AsMemory(), SocketFlags.None).AsTask().WaitAsync(TcpTestSupport.Timeout) > 0)
            {
            }
            return true;
        }
        catch (SocketException)
        {
            return true;
        }
    }

    [Fact]
    public async Task ForwardAsync_BytesBothWays_ArriveAndAreCounted()
    {
        var forwarding = Forward();

        await _client.SendAsync("hello"u8.ToArray(), SocketFlags.None);
        Assert.Equal("hello", await ReceiveAsync(_backend, 5));
        await _backend.SendAsync("world!"u8.ToArray(), SocketFlags.None);
        Assert.Equal("world!", await ReceiveAsync(_client, 6));

        Assert.Equal(5, _session.BytesIn);
        Assert.Equal(6, _session.BytesOut);
        _session.Close("test over");
        await forwarding.WaitAsync(TcpTestSupport.Timeout);
    }

    [Fact]
    public async Task ForwardAsync_ClientHalfCloses_BackendSeesFinAndStillAnswers()
    {
        var forwarding = Forward();

        await _client.SendAsync("last"u8.ToArray(), SocketFlags.None);
        _client.Shutdown(SocketShutdown.Send);

        Assert.Equal("last", await ReceiveAsync(_backend, 4));
        Assert.Equal(0, await _backend.ReceiveAsync(new byte[16].AsMemory(), SocketFlags.None).AsTask().WaitAsync(TcpTestSupport.Timeout));
        Assert.False(forwarding.IsCompleted);

        await _backend.SendAsync("reply"u8.ToArray(), SocketFlags.None);
        Assert.Equal("reply", await ReceiveAsync(_client, 5));
        _backend.Shutdown(SocketShutdown.Send);

        Assert.True(await ClosedAsync(_client));
        await forwarding.WaitAsync(TcpTestSupport.Timeout);
        Assert.Equal(TcpForwarder.ReasonClientClosed, _session.EndReason);
    }

    [Fact]
    public async Task ForwardAsync_BackendResets_BothDirectionsEnd()
    {
        var forwarding = Forward();
        await _client.SendAsync("x"u8.ToArray(), SocketFlags.None);
        await ReceiveAsync(_backend, 1);

        _backend.LingerState = new LingerOption(true, 0);
        _backend.Close();

        // Both directions end without the client doing anything; the caller then closes the client's socket.
        await forwarding.WaitAsync(TcpTestSupport.Timeout);
        Assert.Equal(TcpForwarder.ReasonBackendFailed, _session.EndReason);
    }

    [Fact]
    public async Task ForwardAsync_BackendClosesAtOnce_ClientSeesTheEnd()
    {
        // A member that accepted and went away before the session started (it reset or closed while connecting).
        _backend.Close();

        var forwarding = Forward();

        Assert.True(await ClosedAsync(_client));
        _client.Close();
        await forwarding.WaitAsync(TcpTestSupport.Timeout);
    }

    [Fact]
    public async Task ForwardAsync_ClientResets_SessionEndsAsClientFailed()
    {
        var forwarding = Forward();

        _client.LingerState = new LingerOption(true, 0);
        _client.Close();

        await forwarding.WaitAsync(TcpTestSupport.Timeout);
        Assert.Equal(TcpForwarder.ReasonClientFailed, _session.EndReason);
    }

    [Fact]
    public async Task ForwardAsync_SessionClosedByProxy_EndsWhileIdle()
    {
        var forwarding = Forward();

        _session.Close(SessionRegistry.ReasonMemberNotEligible);

        await forwarding.WaitAsync(TcpTestSupport.Timeout);
        Assert.Equal(SessionRegistry.ReasonMemberNotEligible, _session.EndReason);
    }

    [Fact]
    public async Task ForwardAsync_ReceiverSlowerThanSender_EveryByteArrivesInOrder()
    {
        var forwarding = Forward();
        var data = new byte[8 * 1024 * 1024];
        new Random(5).NextBytes(data);

        // The backend reads nothing until the client has sent it all: the proxy must keep what the kernel does not take.
        var sending = _client.SendAsync(data, SocketFlags.None);
        var received = new byte[data.Length];
        var filled = 0;
        while (filled < data.Length)
        {
            var n = await _backend.ReceiveAsync(received.AsMemory(filled), SocketFlags.None).AsTask().WaitAsync(TcpTestSupport.Timeout);
            Assert.NotEqual(0, n);
            filled += n;
        }
        await sending.WaitAsync(TcpTestSupport.Timeout);

        Assert.Equal(data, received);
        Assert.Equal(data.Length, _session.BytesIn);
        _session.Close("test over");
        await forwarding.WaitAsync(TcpTestSupport.Timeout);
    }

    [Fact]
    public async Task ForwardAsync_KestrelAbortsTheClient_SessionEnds()
    {
        var forwarding = Forward();

        // What TcpSocketConnection.Abort does when Kestrel stops with the session still open.
        _proxyClientSide.Dispose();

        await forwarding.WaitAsync(TcpTestSupport.Timeout);
        Assert.Equal(TcpForwarder.ReasonClientFailed, _session.EndReason);
        Assert.True(await ClosedAsync(_backend));
    }
}
