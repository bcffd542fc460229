using System.IO.Pipelines;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Connections;
using PatroniYarp.Tcp;

namespace PatroniYarp.Tests.Tcp;

public class TcpForwarderTests : IAsyncLifetime
{
    private readonly Pipe _fromClient = new();
    private readonly Pipe _toClient = new();
    private readonly SessionRegistry _registry = new(TimeProvider.System);
    private Socket _proxySide = null!;
    private Socket _backend = null!;
    private TcpSession _session = null!;
    private DefaultConnectionContext _connection = null!;

    public async Task InitializeAsync()
    {
        (_proxySide, _backend) = await TcpTestSupport.SocketPairAsync();
        _session = TcpTestSupport.NewSession(_registry, new TcpPortEndpoint("main", "master", "http://127.0.0.1:6432"), "a");
        // Kestrel's view: the application reads Transport.Input (what the client sent) and writes Transport.Output.
        _connection = new DefaultConnectionContext("test",
            transport: new DuplexPipe(_fromClient.Reader, _toClient.Writer),
            application: new DuplexPipe(_toClient.Reader, _fromClient.Writer));
    }

    public Task DisposeAsync()
    {
        _proxySide.Dispose();
        _backend.Dispose();
        _session.Dispose();
        return Task.CompletedTask;
    }

    private Task Forward() => TcpForwarder.ForwardAsync(_connection.Transport, _proxySide, _session);

    private async Task<string> ReceiveFromProxyAsync(int length)
    {
        var buffer = new byte[length];
        var read = 0;
        while (read < length)
        {
            var n = await _backend.ReceiveAsync(buffer.AsMemory(read), SocketFlags.None).AsTask().WaitAsync(TcpTestSupport.Timeout);
            Assert.NotEqual(0, n);
            read += n;
        }
        return Encoding.ASCII.GetString(buffer);
    }

    private async Task<string> ReadClientOutputAsync(int length)
    {
        while (true)
        {
            var result = await _toClient.Reader.ReadAsync().AsTask().WaitAsync(TcpTestSupport.Timeout);
            if (result.Buffer.Length >= length || result.IsCompleted)
            {
                var text = Encoding.ASCII.GetString(result.Buffer.Slice(0, Math.Min(length, result.Buffer.Length)));
                _toClient.Reader.AdvanceTo(result.Buffer.GetPosition(Math.Min(length, result.Buffer.Length)));
                return text;
            }
            _toClient.Reader.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }
    }

    private async Task<bool> ClientOutputCompletedAsync()
    {
        var result = await _toClient.Reader.ReadAsync().AsTask().WaitAsync(TcpTestSupport.Timeout);
        _toClient.Reader.AdvanceTo(result.Buffer.End);
        return result.IsCompleted;
    }

    [Fact]
    public async Task ForwardAsync_BytesBothWays_ArriveAndAreCounted()
    {
        var forwarding = Forward();

        await _fromClient.Writer.WriteAsync("hello"u8.ToArray());
        Assert.Equal("hello", await ReceiveFromProxyAsync(5));
        await _backend.SendAsync("world!"u8.ToArray(), SocketFlags.None);
        Assert.Equal("world!", await ReadClientOutputAsync(6));

        Assert.Equal(5, _session.BytesIn);
        Assert.Equal(6, _session.BytesOut);
        _session.Close("test over");
        await forwarding.WaitAsync(TcpTestSupport.Timeout);
    }

    [Fact]
    public async Task ForwardAsync_ClientHalfCloses_BackendSeesFinAndStillAnswers()
    {
        var forwarding = Forward();

        await _fromClient.Writer.WriteAsync("last"u8.ToArray());
        await _fromClient.Writer.CompleteAsync();

        Assert.Equal("last", await ReceiveFromProxyAsync(4));
        Assert.Equal(0, await _backend.ReceiveAsync(new byte[16].AsMemory(), SocketFlags.None).AsTask().WaitAsync(TcpTestSupport.Timeout));
        Assert.False(forwarding.IsCompleted);

        await _backend.SendAsync("reply"u8.ToArray(), SocketFlags.None);
        Assert.Equal("reply", await ReadClientOutputAsync(5));
        _backend.Shutdown(SocketShutdown.Send);

        Assert.True(await ClientOutputCompletedAsync());
        await forwarding.WaitAsync(TcpTestSupport.Timeout);
        Assert.Equal(TcpForwarder.ReasonClientClosed, _session.EndReason);
    }

    [Fact]
    public async Task ForwardAsync_BackendResets_BothDirectionsEnd()
    {
        var forwarding = Forward();
        await _fromClient.Writer.WriteAsync("x"u8.ToArray());
        await ReceiveFromProxyAsync(1);

        _backend.LingerState = new LingerOption(true, 0);
        _backend.Close();

        await forwarding.WaitAsync(TcpTestSupport.Timeout);
        Assert.True(await ClientOutputCompletedAsync());
        Assert.True(_session.Closing.IsCancellationRequested || _session.EndReason == TcpForwarder.ReasonBackendClosed);
    }

    [Fact]
    public async Task ForwardAsync_ClientFails_BackendDirectionIsCancelled()
    {
        var forwarding = Forward();

        await _fromClient.Writer.CompleteAsync(new ConnectionResetException("client reset"));

        await forwarding.WaitAsync(TcpTestSupport.Timeout);
        Assert.Equal(TcpForwarder.ReasonClientFailed, _session.EndReason);
        Assert.True(await ClientOutputCompletedAsync());
    }

    [Fact]
    public async Task ForwardAsync_SessionClosedByProxy_EndsWhileIdle()
    {
        var forwarding = Forward();

        _session.Close(SessionRegistry.ReasonMemberNotEligible);

        await forwarding.WaitAsync(TcpTestSupport.Timeout);
        Assert.True(await ClientOutputCompletedAsync());
        Assert.Equal(SessionRegistry.ReasonMemberNotEligible, _session.EndReason);
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
