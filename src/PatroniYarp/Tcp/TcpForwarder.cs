using System.Buffers;
using System.Net.Sockets;

namespace PatroniYarp.Tcp;

/// <summary>
/// Copies bytes between a client's socket and a backend's, one copy per direction: each direction waits for data with
/// a zero-byte receive, rents a buffer only while data flows and returns it once the socket is drained, so an idle
/// session holds no buffer and a busy one crosses the proxy with one copy and no thread-pool hop. A FIN is passed on;
/// a failure in one direction closes the session.
/// </summary>
internal static class TcpForwarder
{
    public const string ReasonClientClosed = "client closed";
    public const string ReasonBackendClosed = "backend closed";
    public const string ReasonClientFailed = "client connection failed";
    public const string ReasonBackendFailed = "backend connection failed";

    /// <summary>HAProxy's default bufsize is 16 KiB; a bigger buffer halves the system calls of a bulk COPY.</summary>
    internal const int BufferSize = 64 * 1024;

    /// <summary>Runs until both directions have ended; never throws. The caller disposes both sockets.</summary>
    /// <remarks>
    /// The copy to the backend awaits the other direction when it is done, rather than a third method awaiting both:
    /// one state machine fewer held by every open session.
    /// </remarks>
    public static Task ForwardAsync(Socket client, Socket backend, TcpSession session)
    {
        session.AttachSockets(client, backend);
        return CopyAsync(client, backend, session, toBackend: true, CopyAsync(backend, client, session, toBackend: false, other: null));
    }

    /// <summary>
    /// Sends all of <paramref name="data"/>; true when the socket's send buffer was full and it waited. On a non-blocking
    /// socket (the TCP ports' own sockets, see <see cref="TcpSocketConnection"/>) it first sends straight
    /// away, which nearly always takes all: no async machinery, and no event args that would keep pointing at the
    /// (pooled) buffer after the send — a socket's cached args hold its last buffer until its next send, so every idle
    /// session kept a dropped 16 KiB startup buffer alive after a burst (P5). After a wait, see
    /// <see cref="ForgetBufferAsync"/>. <paramref name="tryFirst"/> false skips the first try (a congested stream).
    /// </summary>
    internal static async ValueTask<bool> SendAsync(Socket socket, ReadOnlyMemory<byte> data, bool tryFirst,
        CancellationToken cancellationToken)
    {
        if (tryFirst && !socket.Blocking)
        {
            var sent = socket.Send(data.Span, SocketFlags.None, out var error);
            if (error == SocketError.Success)
            {
                data = data[sent..];
                if (data.IsEmpty)
                {
                    return false;
                }
            }
            else if (error != SocketError.WouldBlock)
            {
                throw new SocketException((int)error);
            }
        }
        while (!data.IsEmpty)
        {
            data = data[await socket.SendAsync(data, SocketFlags.None, cancellationToken).ConfigureAwait(false)..];
        }
        return true;
    }

    /// <summary>
    /// After a send that waited, the socket's cached event args point at its buffer until the next send: an empty send
    /// (nothing on the wire, done at once) makes them let go, so a session going idle keeps no buffer alive.
    /// </summary>
    internal static async ValueTask ForgetBufferAsync(Socket socket) =>
        await socket.SendAsync(ReadOnlyMemory<byte>.Empty, SocketFlags.None).ConfigureAwait(false);

    /// <summary>A whole message (the startup, the backend's first reply): sent, and the buffer forgotten if it waited.</summary>
    internal static async ValueTask SendMessageAsync(Socket socket, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        if (await SendAsync(socket, data, tryFirst: true, cancellationToken).ConfigureAwait(false))
        {
            await ForgetBufferAsync(socket).ConfigureAwait(false);
        }
    }

    /// <summary>One direction; then, when <paramref name="other"/> is given, waits for that direction to end too.</summary>
    /// <remarks>
    /// Its socket calls take no cancellation token: each would leave a callback registered with the session for as long
    /// as it lives. Closing the session closes both sockets instead (<see cref="TcpSession.AttachSockets"/>), which
    /// ends a pending call with an error that is then no failure.
    /// </remarks>
    private static async Task CopyAsync(Socket from, Socket to, TcpSession session, bool toBackend, Task? other)
    {
        byte[]? buffer = null;
        var receiving = true;
        // The last send had to wait: send asynchronously right away until the stream goes idle.
        var congested = false;
        try
        {
            while (true)
            {
                receiving = true;
                if (buffer is null)
                {
                    // Wait for data without holding a buffer: idle sessions cost no memory.
                    await from.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None).ConfigureAwait(false);
                    buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
                }

                var received = await from.ReceiveAsync(buffer, SocketFlags.None).ConfigureAwait(false);
                if (received == 0)
                {
                    session.NoteEnd(toBackend ? ReasonClientClosed : ReasonBackendClosed);
                    receiving = false;
                    to.Shutdown(SocketShutdown.Send);
                    break;
                }

                receiving = false;
                congested = await SendAsync(to, buffer.AsMemory(0, received), !congested, CancellationToken.None).ConfigureAwait(false);
                if (toBackend)
                {
                    session.AddBytesIn(received);
                }
                else
                {
                    session.AddBytesOut(received);
                }

                // A full buffer means more is probably waiting: keep it and skip the zero-byte wait on a busy stream.
                if (received < buffer.Length)
                {
                    if (congested)
                    {
                        await ForgetBufferAsync(to).ConfigureAwait(false);
                        congested = false;
                    }
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = null;
                }
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Unless the proxy or the other direction's failure closed the session (and so the sockets).
            if (!session.Closing.IsCancellationRequested)
            {
                session.Close(receiving == toBackend ? ReasonClientFailed : ReasonBackendFailed);
            }
        }
        finally
        {
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
        if (other is not null)
        {
            await other.ConfigureAwait(false);
        }
    }
}
