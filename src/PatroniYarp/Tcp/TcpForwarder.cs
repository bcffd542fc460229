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
    public static async Task ForwardAsync(Socket client, Socket backend, TcpSession session)
    {
        var toBackend = CopyAsync(client, backend, session, toBackend: true);
        var toClient = CopyAsync(backend, client, session, toBackend: false);
        await toBackend.ConfigureAwait(false);
        await toClient.ConfigureAwait(false);
    }

    private static async Task CopyAsync(Socket from, Socket to, TcpSession session, bool toBackend)
    {
        var closing = session.Closing;
        byte[]? buffer = null;
        var receiving = true;
        try
        {
            while (true)
            {
                receiving = true;
                if (buffer is null)
                {
                    // Wait for data without holding a buffer: idle sessions cost no memory.
                    await from.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, closing).ConfigureAwait(false);
                    buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
                }

                var received = await from.ReceiveAsync(buffer, SocketFlags.None, closing).ConfigureAwait(false);
                if (received == 0)
                {
                    session.NoteEnd(toBackend ? ReasonClientClosed : ReasonBackendClosed);
                    receiving = false;
                    to.Shutdown(SocketShutdown.Send);
                    return;
                }

                receiving = false;
                var remaining = buffer.AsMemory(0, received);
                while (!remaining.IsEmpty)
                {
                    var sent = await to.SendAsync(remaining, SocketFlags.None, closing).ConfigureAwait(false);
                    remaining = remaining[sent..];
                }
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
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = null;
                }
            }
        }
        catch (OperationCanceledException) when (closing.IsCancellationRequested)
        {
            // Closed by the proxy or by the other direction's failure.
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            session.Close(receiving == toBackend ? ReasonClientFailed : ReasonBackendFailed);
        }
        finally
        {
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }
}
