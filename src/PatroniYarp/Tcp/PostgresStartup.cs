using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;

namespace PatroniYarp.Tcp;

/// <summary>What a client's first PostgreSQL message asks for.</summary>
internal enum FirstMessageKind
{
    /// <summary>A plaintext StartupMessage: the backend's first reply is checked before the client sees it.</summary>
    Startup,
    SslRequest,
    GssEncRequest,
    CancelRequest,
    /// <summary>A TLS ClientHello without SSLRequest (PostgreSQL 17 sslnegotiation=direct).</summary>
    DirectTls,
}

/// <summary>
/// A session's first PostgreSQL message, taken off the client's socket and kept, with the
/// backend's first reply in a pooled buffer, so a session can be replayed on another member when the first one turns it
/// away unseen.
/// Only a plaintext StartupMessage is replayed: when the backend closes or resets before answering, or answers 57P03
/// (cannot_connect_now: shutting down, starting up), 57P01 or 57P02, the client never sees it and the handler tries
/// the next member. A login without a password (trust, cert) is held to its ReadyForQuery, so a member that shuts down
/// during it is replayed too; once a password is asked for, the exchange is the client's. TLS (SSLRequest,
/// GSSENCRequest, direct TLS) is end to end — the proxy never opens it, so a rejection inside TLS reaches the client as
/// it would without a proxy. A CancelRequest is passed on as it is.
/// The reply buffer is given back (<see cref="Dispose"/>) before the session starts forwarding. The message itself is
/// kept in an array of its own size, not a pooled buffer: a session holds it through the connect, and sessions that
/// connect in a burst hold more buffers than the pool keeps, each of which would be new garbage of the pool's size (P5).
/// </summary>
internal sealed class PostgresStartup : IDisposable
{
    /// <summary>Longest first message accepted; a real StartupMessage is a few hundred bytes.</summary>
    public const int MaxMessageLength = 10_000;

    /// <summary>A client sends its first message right after connecting; one that says nothing for this long is closed.</summary>
    public static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Room for the backend's first reply; a longer one goes to the client unchecked.</summary>
    internal const int ReplyCapacity = 2048;

    /// <summary>
    /// The reply's first buffer: an authentication request and a trust login's whole answer (410–417 bytes from
    /// PostgreSQL 15) fit; a longer one moves to one of <see cref="ReplyCapacity"/>. Sessions connecting in a burst hold
    /// it past what the pool keeps: each is new garbage (P5).
    /// </summary>
    internal const int InitialReplyLength = 512;

    /// <summary>The first buffer of a read from the socket: a real StartupMessage fits; a longer one moves to a bigger one.</summary>
    internal const int InitialBufferLength = 1024;

    private const int HeaderLength = 8;
    private const int CancelRequestCode = 80877102;
    private const int SslRequestCode = 80877103;
    private const int GssEncRequestCode = 80877104;
    private const byte TlsHandshakeRecord = 0x16;
    private const byte ErrorResponse = (byte)'E';
    private const byte Authentication = (byte)'R';
    private const int AuthenticationOk = 0;
    private const byte NegotiateProtocolVersion = (byte)'v';
    private const byte ParameterStatus = (byte)'S';
    private const byte BackendKeyData = (byte)'K';
    private const byte Notice = (byte)'N';

    private byte[]? _message;
    private byte[]? _reply;
    private int _replyLength;
    private int _disposed;

    private PostgresStartup(FirstMessageKind kind, byte[] message)
    {
        Kind = kind;
        _message = message;
        Length = message.Length;
    }

    public FirstMessageKind Kind { get; }

    /// <summary>Bytes of the client's first message.</summary>
    public int Length { get; }

    /// <summary>The backend's first reply as received by the last <see cref="SendAsync"/> (empty unless a startup).</summary>
    public ReadOnlyMemory<byte> Reply
    {
        get
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            return _reply.AsMemory(0, _replyLength);
        }
    }

    /// <summary>
    /// Reads the client's first message straight from its socket. Whatever else arrived with the message is kept with it and
    /// sent on first, so nothing is lost; a PostgreSQL client waits for the answer, so normally nothing does.
    /// </summary>
    /// <returns>The message; or null and why (null when the client just went away).</returns>
    public static async Task<(PostgresStartup? Startup, string? Error)> ReadAsync(EventLoopSocket client, TimeProvider time)
    {
        byte[]? buffer = null;
        var filled = 0;
        CancellationTokenSource? timeout = null;
        try
        {
            // Wait for the first bytes without a buffer: a connection that has said nothing yet costs none.
            if (client.Available == 0)
            {
                timeout = new CancellationTokenSource(ReadTimeout, time);
                await client.WaitReadableAsync(timeout.Token).ConfigureAwait(false);
            }
            buffer = ArrayPool<byte>.Shared.Rent(InitialBufferLength);
            while (true)
            {
                var room = Math.Min(buffer.Length, MaxMessageLength);
                if (filled == room && room < MaxMessageLength)
                {
                    buffer = Grow(buffer, filled, MaxMessageLength);
                    room = MaxMessageLength;
                }
                // Usually the whole message is there at once (checked above): no timer is needed then.
                if (timeout is null && filled > 0 && client.Available == 0)
                {
                    timeout = new CancellationTokenSource(ReadTimeout, time);
                }
                var received = await client.ReceiveAsync(buffer.AsMemory(filled, room - filled), timeout?.Token ?? default)
                    .ConfigureAwait(false);
                if (received == 0)
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                    return (null, filled == 0 ? null : $"the client closed after {filled} bytes of its first message");
                }
                filled += received;
                var (kind, length, error) = Classify(buffer.AsSpan(0, filled));
                if (error is not null)
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                    return (null, error);
                }
                if (length > 0)
                {
                    var startup = new PostgresStartup(kind, buffer.AsSpan(0, filled).ToArray());
                    ArrayPool<byte>.Shared.Return(buffer);
                    return (startup, null);
                }
            }
        }
        catch (OperationCanceledException) when (timeout?.IsCancellationRequested == true)
        {
            Return(buffer);
            return (null, $"no first message within {ReadTimeout.TotalSeconds:0} s");
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // A reset or aborted connection.
            Return(buffer);
            return (null, null);
        }
        finally
        {
            timeout?.Dispose();
        }
    }

    /// <summary>A pooled buffer of at least <paramref name="size"/> bytes with the first <paramref name="filled"/> of <paramref name="buffer"/>, which goes back.</summary>
    private static byte[] Grow(byte[] buffer, int filled, int size)
    {
        var larger = ArrayPool<byte>.Shared.Rent(size);
        buffer.AsSpan(0, filled).CopyTo(larger);
        ArrayPool<byte>.Shared.Return(buffer);
        return larger;
    }

    private static void Return(byte[]? buffer)
    {
        if (buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Sends the first message to a freshly connected backend. For a startup, also waits for the backend's first reply
    /// (to its ReadyForQuery when no password is asked; kept in <see cref="Reply"/> for the client) and says why it must
    /// not reach the client: the backend closed or reset before answering or during a login, or turned the session away
    /// with 57P03, 57P01 or 57P02. Null when it may.
    /// </summary>
    /// <exception cref="OperationCanceledException">When <paramref name="cancellationToken"/> fires (the client left).</exception>
    public async Task<string?> SendAsync(EventLoopSocket backend, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        _replyLength = 0;
        try
        {
            await backend.SendAsync(_message, cancellationToken).ConfigureAwait(false);
            if (Kind != FirstMessageKind.Startup)
            {
                return null;
            }
            _reply ??= ArrayPool<byte>.Shared.Rent(InitialReplyLength);
            while (true)
            {
                if (_replyLength == _reply.Length && _reply.Length < ReplyCapacity)
                {
                    // A long ErrorResponse, or a login's answer that did not fit: read on up to the whole room (Inspect).
                    _reply = Grow(_reply, _replyLength, ReplyCapacity);
                }
                var reply = _reply.AsMemory(0, Math.Min(_reply.Length, ReplyCapacity));
                var received = await backend.ReceiveAsync(reply[_replyLength..], cancellationToken).ConfigureAwait(false);
                _replyLength += received;
                var (complete, rejection) = Inspect(reply.Span[.._replyLength], closed: received == 0);
                if (complete)
                {
                    return rejection;
                }
            }
        }
        catch (SocketException ex)
        {
            // Nothing reached the client yet: whatever the backend managed to say is dropped.
            return $"the connection failed before the startup was answered ({ex.SocketErrorCode})";
        }
    }

    public void Dispose()
    {
        // Let go of the message and the buffer too: the session's state machine keeps this object for its whole life
        // (and the pool may drop the buffer).
        if (Interlocked.Exchange(ref _disposed, 1) == 0 && Interlocked.Exchange(ref _reply, null) is { } reply)
        {
            ArrayPool<byte>.Shared.Return(reply);
        }
        _message = null;
    }

    /// <summary>
    /// What the start of a client's stream is: its first message's kind and length once all of it is there (length 0:
    /// read more), or why it is no PostgreSQL first message.
    /// </summary>
    internal static (FirstMessageKind Kind, int Length, string? Error) Classify(ReadOnlySpan<byte> buffer)
    {
        if (buffer.IsEmpty)
        {
            return default;
        }
        if (buffer[0] == TlsHandshakeRecord)
        {
            // Direct TLS has no PostgreSQL framing: pass on what came, the forwarder carries the rest.
            return (FirstMessageKind.DirectTls, Math.Min(buffer.Length, MaxMessageLength), null);
        }
        if (buffer.Length < HeaderLength)
        {
            return default;
        }
        var header = buffer[..HeaderLength];
        var length = BinaryPrimitives.ReadInt32BigEndian(header);
        var code = BinaryPrimitives.ReadInt32BigEndian(header[4..]);
        if (length is < HeaderLength or > MaxMessageLength)
        {
            return (default, 0, $"the first message is not PostgreSQL's: its length {length} is outside {HeaderLength}..{MaxMessageLength}");
        }
        var kind = code switch
        {
            SslRequestCode => FirstMessageKind.SslRequest,
            GssEncRequestCode => FirstMessageKind.GssEncRequest,
            CancelRequestCode => FirstMessageKind.CancelRequest,
            _ => FirstMessageKind.Startup,
        };
        if (kind is FirstMessageKind.SslRequest or FirstMessageKind.GssEncRequest && length != HeaderLength
            || kind == FirstMessageKind.CancelRequest && length < 16)
        {
            return (default, 0, $"the first message is not PostgreSQL's: a {kind} of {length} bytes");
        }
        return buffer.Length < length ? default : (kind, length, null);
    }

    /// <summary>
    /// Looks at the backend's reply so far: whether enough of it is there to decide, and if so why it must not reach the
    /// client (null when it may). An authentication request is the client's to answer and decides at once. A login that
    /// needs none (trust, cert) is held from its AuthenticationOk to its ReadyForQuery: PostgreSQL sends them in one
    /// flush, and a member that shuts down in between ends the login with 57P01 after an AuthenticationOk, which a
    /// client would see as a failed connect. <paramref name="closed"/>: the backend closed after this much.
    /// </summary>
    internal static (bool Complete, string? Rejection) Inspect(ReadOnlySpan<byte> reply, bool closed = false)
    {
        var authenticated = false;
        var rest = reply;
        while (!rest.IsEmpty)
        {
            var type = rest[0];
            if (type == ErrorResponse)
            {
                return InspectError(rest, full: reply.Length >= ReplyCapacity || closed);
            }
            if (rest.Length < 5)
            {
                break;
            }
            var length = 1 + (long)BinaryPrimitives.ReadInt32BigEndian(rest[1..]);
            if (type == Authentication && !authenticated)
            {
                if (rest.Length < 9)
                {
                    break;
                }
                if (length != 9 || BinaryPrimitives.ReadInt32BigEndian(rest[5..]) != AuthenticationOk)
                {
                    return (true, null);
                }
                authenticated = true;
                rest = rest[9..];
                continue;
            }
            var before = type == NegotiateProtocolVersion || authenticated && type is ParameterStatus or BackendKeyData or Notice;
            if (!before || length < 5)
            {
                // ReadyForQuery, or something this check does not know: the client reads it as it would without a proxy.
                return (true, null);
            }
            if (length > rest.Length)
            {
                break;
            }
            rest = rest[(int)length..];
        }
        if (closed)
        {
            return (true, reply.IsEmpty ? "it closed the connection before answering the startup"
                : authenticated ? "it closed the connection after AuthenticationOk, before ReadyForQuery"
                : null);
        }
        // A reply too long to hold goes to the client as it is.
        return reply.Length >= ReplyCapacity ? (true, null) : (false, null);
    }

    /// <summary>An ErrorResponse: 57P01, 57P02 and 57P03 say the member is going away or not there yet.</summary>
    private static (bool Complete, string? Rejection) InspectError(ReadOnlySpan<byte> error, bool full)
    {
        if (error.Length < 5)
        {
            return (full, null);
        }
        var end = 1 + (long)BinaryPrimitives.ReadInt32BigEndian(error[1..]);
        if (end > error.Length && !full)
        {
            return (false, null);
        }
        // Fields: a type byte and a NUL-terminated text each, then a NUL.
        var fields = error[5..(int)Math.Min(end, error.Length)];
        string? code = null;
        string? message = null;
        while (fields.Length > 1 && fields[0] != 0)
        {
            var type = fields[0];
            var terminator = fields[1..].IndexOf((byte)0);
            var value = terminator < 0 ? fields[1..] : fields.Slice(1, terminator);
            if (type == (byte)'C')
            {
                code = Encoding.ASCII.GetString(value);
            }
            else if (type == (byte)'M')
            {
                message = Encoding.UTF8.GetString(value);
            }
            fields = terminator < 0 ? default : fields[(terminator + 2)..];
        }
        return code is "57P01" or "57P02" or "57P03" ? (true, $"{code} {message}") : (true, null);
    }
}
