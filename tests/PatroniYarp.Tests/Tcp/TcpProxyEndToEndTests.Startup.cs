using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using PatroniYarp.Testing;

namespace PatroniYarp.Tests.Tcp;

/// <summary>The startup replay: a member that turns a plaintext session away unseen is skipped and the startup replayed.</summary>
public partial class TcpProxyEndToEndTests
{
    /// <summary>An SSLRequest: the 8 bytes a client sends before TLS.</summary>
    private static readonly byte[] SslRequest = [0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F];

    private static async Task<NetworkStream> ConnectRawAsync(int port)
    {
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(IPAddress.Loopback, port);
        return new NetworkStream(client, ownsSocket: true);
    }

    [Theory]
    [InlineData("57P03", "the database system is shutting down", false)]
    [InlineData("57P03", "the database system is starting up", false)]
    [InlineData("57P01", "terminating connection due to administrator command", false)]
    [InlineData(null, "closes before answering", false)]
    // A trust login the member's fast shutdown ends after its AuthenticationOk, before ReadyForQuery.
    [InlineData("57P01", "terminating connection due to administrator command", true)]
    [InlineData(null, "closes before ReadyForQuery", true)]
    public async Task Startup_MemberTurnsSessionAway_ReplayedOnNextMemberAndClientSeesOnlyItsReply(string? sqlState, string what, bool afterLogin)
    {
        _portTemplate = _portTemplate with { LeaderWaitTimeout = 60 };
        byte[] reply = [.. afterLogin ? FakePostgres.LoginBeforeReady() : [], .. sqlState is null ? [] : FakePostgres.Error(sqlState, what)];
        await using var leaving = new FakePostgres(reply.Length == 0 ? null : reply);
        var master = FreePort.Next();
        await StartAsync(Options(("master", master)), [LeaderCluster("master", "old", leaving.Port)]);

        await using var session = await ConnectAsync(master);
        await TcpTestSupport.PollUntilAsync(() => leaving.Accepted == 1 && Held.Waiting(MasterId) == 1, $"the old member {what} and the session is held");
        Assert.True(_refresher.Requests("main") > 0);

        _yarp.Update([], [LeaderCluster("master", "new", _echo.Port)]);

        // The first bytes the client sees are the new member's answer to its startup, nothing of the old one's.
        await AssertEchoesAsync(session, "on the new member");
        Assert.Equal(1, leaving.Accepted);
        Assert.Contains(_logs.Entries, e => e.Level == LogLevel.Warning && e.Message.Contains("turned a session away", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Startup_MemberShuttingDownBesideGoodOne_GoodOneServesWithoutHolding()
    {
        await using var leaving = new FakePostgres(FakePostgres.Error("57P03", "the database system is shutting down"));
        var port = FreePort.Next();
        await StartAsync(Options(("replicas", port)), [Cluster("replicas", ("old", leaving.Port), ("node1", _echo.Port))]);

        for (var i = 0; i < 3; i++)
        {
            await using var session = await ConnectAsync(port);
            await AssertEchoesAsync(session, $"session {i}");
        }
        // Tried once at most, then skipped while it is marked unhealthy.
        Assert.InRange(leaving.Accepted, 0, 1);
    }

    [Fact]
    public async Task Startup_OtherError_PassedToTheClient()
    {
        var error = FakePostgres.Error("28P01", "password authentication failed for user \"test\"");
        await using var rejecting = new FakePostgres(error);
        var master = FreePort.Next();
        await StartAsync(Options(("master", master)), [LeaderCluster("master", "node1", rejecting.Port)]);

        await using var session = await ConnectAsync(master);

        var reply = new byte[error.Length];
        await session.ReadExactlyAsync(reply).AsTask().WaitAsync(TcpTestSupport.Timeout);
        Assert.Equal(error, reply);
        Assert.Equal(0, _refresher.Requests("main"));
    }

    [Fact]
    public async Task Startup_SslRequest_PassedThroughUntouchedAndNeverReplayed()
    {
        // TLS is end to end: whatever the member answers reaches the client, even a rejection.
        var error = FakePostgres.Error("57P03", "the database system is shutting down");
        await using var leaving = new FakePostgres(error);
        var master = FreePort.Next();
        await StartAsync(Options(("master", master)), [LeaderCluster("master", "node1", leaving.Port)]);

        await using var session = await ConnectRawAsync(master);
        await session.WriteAsync(SslRequest);

        var reply = new byte[error.Length];
        await session.ReadExactlyAsync(reply).AsTask().WaitAsync(TcpTestSupport.Timeout);
        Assert.Equal(error, reply);
        Assert.Equal(SslRequest, await leaving.FirstMessageAsync());
        Assert.Equal(0, _refresher.Requests("main"));
    }

    [Fact]
    public async Task Startup_CancelRequest_ForwardedAsItIs()
    {
        var master = FreePort.Next();
        await StartAsync(Options(("master", master)), [Cluster("master", ("node1", _echo.Port))]);
        byte[] cancel = [0, 0, 0, 16, 0x04, 0xD2, 0x16, 0x2E, 0, 0, 0x30, 0x39, 1, 2, 3, 4];

        await using var session = await ConnectRawAsync(master);
        await session.WriteAsync(cancel);

        var echoed = new byte[cancel.Length];
        await session.ReadExactlyAsync(echoed).AsTask().WaitAsync(TcpTestSupport.Timeout);
        Assert.Equal(cancel, echoed);
    }

    [Theory]
    [InlineData("hello, not PostgreSQL", "its length")]
    [InlineData("oversized", "its length 20000")]
    [InlineData("short ssl", "a SslRequest of 12 bytes")]
    public async Task Startup_MalformedFirstMessage_ClosedWithALogLineAndNoMemberReached(string kind, string logged)
    {
        var master = FreePort.Next();
        await StartAsync(Options(("master", master)), [Cluster("master", ("node1", _echo.Port))]);
        var bytes = kind switch
        {
            "oversized" => [0, 0, 0x4E, 0x20, 0, 3, 0, 0],
            "short ssl" => [0, 0, 0, 12, 0x04, 0xD2, 0x16, 0x2F, 0, 0, 0, 0],
            _ => Encoding.ASCII.GetBytes(kind),
        };

        await using var session = await ConnectRawAsync(master);
        await session.WriteAsync(bytes);

        Assert.True(await TcpTestSupport.WaitClosedAsync(session));
        Assert.Equal(0, _echo.Accepted);
        await TcpTestSupport.PollUntilAsync(() => _logs.Entries.Any(e => e.Level == LogLevel.Warning
            && e.Message.Contains("closing the session", StringComparison.Ordinal) && e.Message.Contains(logged, StringComparison.Ordinal)),
            "the log line");
    }

    /// <summary>
    /// A PostgreSQL stand-in that reads a session's first message, answers it with a fixed reply (or nothing) and
    /// closes, as a member shutting down does.
    /// </summary>
    internal sealed class FakePostgres : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly byte[]? _reply;
        private readonly TaskCompletionSource<byte[]> _firstMessage = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly Task _acceptLoop;
        private int _accepted;

        /// <param name="reply">The answer to every first message; null to close without answering.</param>
        public FakePostgres(byte[]? reply)
        {
            _reply = reply;
            _listener.Start();
            _acceptLoop = AcceptLoopAsync();
        }

        public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

        public int Accepted => Volatile.Read(ref _accepted);

        public Task<byte[]> FirstMessageAsync() => _firstMessage.Task.WaitAsync(TcpTestSupport.Timeout);

        /// <summary>An ErrorResponse as PostgreSQL sends it: severity, code and message fields.</summary>
        public static byte[] Error(string sqlState, string message) =>
            Message('E', $"SFATAL\0VFATAL\0C{sqlState}\0M{message}\0\0");

        /// <summary>What a trust login answers before ReadyForQuery: AuthenticationOk and a ParameterStatus.</summary>
        public static byte[] LoginBeforeReady() =>
            [.. Message('R', "\0\0\0\0"), .. Message('S', "server_version\015.14\0")];

        public static byte[] ReadyForQuery() => Message('Z', "I");

        private static byte[] Message(char type, string body)
        {
            var bytes = Encoding.UTF8.GetBytes(body);
            var message = new byte[5 + bytes.Length];
            message[0] = (byte)type;
            BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(1), 4 + bytes.Length);
            bytes.CopyTo(message, 5);
            return message;
        }

        private async Task AcceptLoopAsync()
        {
            try
            {
                while (true)
                {
                    using var socket = await _listener.AcceptSocketAsync();
                    Interlocked.Increment(ref _accepted);
                    var buffer = new byte[1024];
                    var read = await socket.ReceiveAsync(buffer, SocketFlags.None);
                    _firstMessage.TrySetResult(buffer[..read]);
                    if (_reply is not null)
                    {
                        await socket.SendAsync(_reply, SocketFlags.None);
                    }
                    socket.Shutdown(SocketShutdown.Both);
                }
            }
            // Stopped: the loop may call Accept after Stop (InvalidOperationException) as well as during it.
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException or InvalidOperationException)
            {
            }
        }

        public async ValueTask DisposeAsync()
        {
            _listener.Stop();
            await _acceptLoop;
        }
    }
}
