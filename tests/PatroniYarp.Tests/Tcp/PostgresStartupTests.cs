using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Time.Testing;
using PatroniYarp.Tcp;
using PatroniYarp.Tests.Patroni;

namespace PatroniYarp.Tests.Tcp;

public class PostgresStartupTests
{
    private static (FirstMessageKind Kind, int Length, string? Error) Classify(params byte[] bytes) =>
        PostgresStartup.Classify(bytes);

    [Fact]
    public void Classify_WholeStartupMessage_StartupOfItsLength()
    {
        var startup = TcpProxyEndToEndTests.StartupMessage;
        Assert.Equal((FirstMessageKind.Startup, startup.Length, null), Classify([.. startup, 0x51]));
    }

    [Fact]
    public void Classify_PartOfAMessage_AsksForMore()
    {
        Assert.Equal(default, Classify(0, 0, 0));
        Assert.Equal(default, Classify(TcpProxyEndToEndTests.StartupMessage[..12]));
    }

    [Theory]
    [InlineData(new byte[] { 0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F }, "SslRequest")]
    [InlineData(new byte[] { 0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x30 }, "GssEncRequest")]
    [InlineData(new byte[] { 0, 0, 0, 16, 0x04, 0xD2, 0x16, 0x2E, 0, 0, 0, 1, 0, 0, 0, 2 }, "CancelRequest")]
    [InlineData(new byte[] { 0x16, 0x03, 0x01, 0x02, 0x00 }, "DirectTls")]
    public void Classify_SpecialRequests_KnownWithTheirLength(byte[] bytes, string kind)
    {
        Assert.Equal((Enum.Parse<FirstMessageKind>(kind), bytes.Length, null), Classify(bytes));
    }

    [Theory]
    [InlineData(new byte[] { 0, 0, 0, 4, 0, 3, 0, 0 })]
    [InlineData(new byte[] { 0, 0, 0x27, 0x11, 0, 3, 0, 0 })]
    [InlineData(new byte[] { 0x47, 0x45, 0x54, 0x20, 0x2F, 0x20, 0x48, 0x54 })]
    public void Classify_LengthOutOfBounds_Error(byte[] bytes)
    {
        Assert.Contains("not PostgreSQL's", Classify(bytes).Error);
    }

    private static byte[] Error(string code) => TcpProxyEndToEndTests.FakePostgres.Error(code, "m");

    [Theory]
    [InlineData("57P01", true)]
    [InlineData("57P02", true)]
    [InlineData("57P03", true)]
    [InlineData("28P01", false)]
    [InlineData("53300", false)]
    public void Inspect_ErrorResponse_RejectsOnlyTheMemberGoingAwayCodes(string code, bool rejected)
    {
        var (complete, rejection) = PostgresStartup.Inspect(Error(code));
        Assert.True(complete);
        Assert.Equal(rejected, rejection is not null);
    }

    [Fact]
    public void Inspect_PartOfAnErrorResponse_AsksForMore()
    {
        Assert.False(PostgresStartup.Inspect(Error("57P03")[..10]).Complete);
        Assert.False(PostgresStartup.Inspect(ReadOnlySpan<byte>.Empty).Complete);
    }

    /// <summary>AuthenticationMD5Password with its salt.</summary>
    private static readonly byte[] Md5Request = [(byte)'R', 0, 0, 0, 12, 0, 0, 0, 5, 1, 2, 3, 4];

    /// <summary>A password request is the client's to answer: it goes to the client once its code is there.</summary>
    [Fact]
    public void Inspect_PasswordRequest_PassedOnceItsCodeIsThere()
    {
        Assert.False(PostgresStartup.Inspect(Md5Request[..8]).Complete);
        Assert.Equal((true, null), PostgresStartup.Inspect(Md5Request[..9]));
    }

    [Fact]
    public void Inspect_LoginWithoutPassword_HeldUntilReadyForQuery()
    {
        var login = TcpProxyEndToEndTests.FakePostgres.LoginBeforeReady();
        Assert.Equal((false, null), PostgresStartup.Inspect(login));
        Assert.Equal((true, null), PostgresStartup.Inspect([.. login, .. TcpProxyEndToEndTests.FakePostgres.ReadyForQuery()]));
    }

    [Theory]
    [InlineData("57P01", true)]
    [InlineData("53300", false)]
    public void Inspect_LoginEndedByAnError_RejectedOnlyForTheMemberGoingAway(string code, bool rejected)
    {
        var (complete, rejection) = PostgresStartup.Inspect([.. TcpProxyEndToEndTests.FakePostgres.LoginBeforeReady(), .. Error(code)]);
        Assert.True(complete);
        Assert.Equal(rejected, rejection is not null);
    }

    [Fact]
    public void Inspect_ClosedBeforeAnswerOrDuringLogin_Rejected()
    {
        Assert.Contains("before answering", PostgresStartup.Inspect(ReadOnlySpan<byte>.Empty, closed: true).Rejection);
        var login = TcpProxyEndToEndTests.FakePostgres.LoginBeforeReady();
        Assert.Contains("before ReadyForQuery", PostgresStartup.Inspect(login, closed: true).Rejection);
        Assert.Contains("before ReadyForQuery", PostgresStartup.Inspect(login[..^3], closed: true).Rejection);
    }

    [Fact]
    public void Inspect_ClosedAfterPartOfSomethingElse_PassedToTheClient()
    {
        Assert.Equal((true, null), PostgresStartup.Inspect([(byte)'v', 0, 0], closed: true));
        Assert.Equal((true, null), PostgresStartup.Inspect(Md5Request[..6], closed: true));
    }

    [Fact]
    public void Inspect_LoginLongerThanTheRoom_PassedToTheClient()
    {
        // AuthenticationOk, then ParameterStatus messages past the room.
        var login = TcpProxyEndToEndTests.FakePostgres.LoginBeforeReady();
        var parameter = login.AsSpan(9);
        var reply = new byte[PostgresStartup.ReplyCapacity];
        login.CopyTo(reply, 0);
        for (var filled = login.Length; filled < reply.Length; filled += parameter.Length)
        {
            parameter[..Math.Min(parameter.Length, reply.Length - filled)].CopyTo(reply.AsSpan(filled));
        }
        Assert.Equal((false, null), PostgresStartup.Inspect(reply.AsSpan(0, login.Length + 3 * parameter.Length)));
        Assert.Equal((true, null), PostgresStartup.Inspect(reply));
    }
}

public class PostgresStartupSocketTests
{
    private static byte[] StartupWithOption(int length)
    {
        // Protocol 3.0, "user" set to a long name, then the terminating NUL.
        var message = new byte[length];
        BinaryPrimitives.WriteInt32BigEndian(message, length);
        BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(4), 196608);
        "user\0"u8.CopyTo(message.AsSpan(8));
        message.AsSpan(13, length - 15).Fill((byte)'u');
        return message;
    }

    [Theory]
    [InlineData(200)]
    [InlineData(PostgresStartup.InitialBufferLength)]
    [InlineData(PostgresStartup.InitialBufferLength + 100)]
    [InlineData(PostgresStartup.MaxMessageLength)]
    public async Task ReadAsync_StartupInTwoParts_WholeMessageAndItIsSentOnWhole(int length)
    {
        var message = StartupWithOption(length);
        using var loop = TcpTestSupport.NewLoop();
        var (client, proxy) = await TcpTestSupport.LoopPairAsync(loop);
        var (backendPeer, backend) = await TcpTestSupport.LoopPairAsync(loop);
        using (client)
        using (proxy)
        using (backendPeer)
        using (backend)
        {
            await client.SendAsync(message.AsMemory(0, 100));
            var read = PostgresStartup.ReadAsync(proxy, TimeProvider.System);
            await client.SendAsync(message.AsMemory(100));
            var (startup, error) = await read;

            Assert.Null(error);
            using (startup)
            {
                Assert.Equal((FirstMessageKind.Startup, length), (startup!.Kind, startup.Length));
                var send = startup.SendAsync(backend, CancellationToken.None);
                var received = new byte[length];
                var filled = 0;
                while (filled < length)
                {
                    filled += await backendPeer.ReceiveAsync(received.AsMemory(filled));
                }
                Assert.Equal(message, received);
                byte[] login = [.. TcpProxyEndToEndTests.FakePostgres.LoginBeforeReady(), .. TcpProxyEndToEndTests.FakePostgres.ReadyForQuery()];
                await backendPeer.SendAsync(login);
                Assert.Null(await send);
                Assert.Equal(login, startup.Reply.ToArray());
            }
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(12)]
    public async Task ReadAsync_ClientStopsBeforeAWholeMessage_NoFirstMessageErrorAfterTheReadTimeout(int sent)
    {
        var time = new FakeTimeProvider();
        using var loop = TcpTestSupport.NewLoop();
        var (client, proxy) = await TcpTestSupport.LoopPairAsync(loop);
        using (client)
        using (proxy)
        {
            await client.SendAsync(TcpProxyEndToEndTests.StartupMessage.AsMemory(0, sent));
            var read = PostgresStartup.ReadAsync(proxy, time);

            // The read arms its timer when it finds nothing (more) to read; until the time is up it goes on waiting.
            await Eventually.TrueAsync(() =>
            {
                time.Advance(PostgresStartup.ReadTimeout);
                return read.IsCompleted;
            }, "the startup read gives up");
            var (startup, error) = await read;

            Assert.Null(startup);
            Assert.Equal($"no first message within {PostgresStartup.ReadTimeout.TotalSeconds:0} s", error);
        }
    }

    [Fact]
    public async Task SendAsync_RejectionLongerThanTheFirstReplyBuffer_ReadWholeAndRejected()
    {
        var message = StartupWithOption(100);
        using var loop = TcpTestSupport.NewLoop();
        var (client, proxy) = await TcpTestSupport.LoopPairAsync(loop);
        var (backendPeer, backend) = await TcpTestSupport.LoopPairAsync(loop);
        using (client)
        using (proxy)
        using (backendPeer)
        using (backend)
        {
            await client.SendAsync(message);
            var (startup, _) = await PostgresStartup.ReadAsync(proxy, TimeProvider.System);
            using (startup)
            {
                var error = TcpProxyEndToEndTests.FakePostgres.Error("57P03", new string('m', PostgresStartup.InitialReplyLength));
                var send = startup!.SendAsync(backend, CancellationToken.None);
                // In two parts, as a backend may send it: the proxy reads on past its first reply buffer.
                await backendPeer.SendAsync(error.AsMemory(0, 300));
                await backendPeer.SendAsync(error.AsMemory(300));

                Assert.StartsWith("57P03 mmm", await send);
                Assert.Equal(error, startup.Reply.ToArray());
            }
        }
    }
}
