using System.IO.Pipelines;
using System.Net.Sockets;

namespace PatroniYarp.Tcp;

/// <summary>
/// Copies bytes between a Kestrel connection (its pooled pipes) and a backend socket, one copy per direction.
/// Client side: Kestrel's input pipe (Kestrel already waits for data before renting a buffer) straight to the socket.
/// Backend side: a zero-byte receive waits for data, then the socket receives into Kestrel's output pipe memory, so an
/// idle session holds no buffer. A FIN is passed on; a failure in one direction closes the session.
/// </summary>
internal static class TcpForwarder
{
    public const string ReasonClientClosed = "client closed";
    public const string ReasonBackendClosed = "backend closed";
    public const string ReasonClientFailed = "client connection failed";
    public const string ReasonBackendFailed = "backend connection failed";

    /// <summary>Runs until both directions have ended; never throws. The caller disposes the backend socket.</summary>
    public static async Task ForwardAsync(IDuplexPipe client, Socket backend, TcpSession session)
    {
        var toBackend = ClientToBackendAsync(client.Input, backend, session);
        var toClient = BackendToClientAsync(backend, client.Output, session);
        await toBackend.ConfigureAwait(false);
        await toClient.ConfigureAwait(false);
    }

    private static async Task ClientToBackendAsync(PipeReader input, Socket backend, TcpSession session)
    {
        var closing = session.Closing;
        try
        {
            while (true)
            {
                var result = await input.ReadAsync(closing).ConfigureAwait(false);
                var buffer = result.Buffer;
                if (!buffer.IsEmpty)
                {
                    foreach (var segment in buffer)
                    {
                        var remaining = segment;
                        while (!remaining.IsEmpty)
                        {
                            var sent = await backend.SendAsync(remaining, SocketFlags.None, closing).ConfigureAwait(false);
                            remaining = remaining[sent..];
                        }
                    }
                    session.AddBytesIn(buffer.Length);
                }
                input.AdvanceTo(buffer.End);

                if (result.IsCompleted)
                {
                    session.NoteEnd(ReasonClientClosed);
                    backend.Shutdown(SocketShutdown.Send);
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (closing.IsCancellationRequested)
        {
            // Closed by the proxy or by the other direction's failure.
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            session.Close(ReasonBackendFailed);
        }
        catch (Exception)
        {
            // Kestrel reports a reset or aborted client as an exception from the input pipe.
            session.Close(ReasonClientFailed);
        }
        finally
        {
            await input.CompleteAsync().ConfigureAwait(false);
        }
    }

    private static async Task BackendToClientAsync(Socket backend, PipeWriter output, TcpSession session)
    {
        var closing = session.Closing;
        try
        {
            var drained = true;
            while (true)
            {
                if (drained)
                {
                    // Wait for data without holding a buffer: idle sessions cost no memory.
                    await backend.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, closing).ConfigureAwait(false);
                }

                var memory = output.GetMemory();
                var received = await backend.ReceiveAsync(memory, SocketFlags.None, closing).ConfigureAwait(false);
                if (received == 0)
                {
                    session.NoteEnd(ReasonBackendClosed);
                    return;
                }
                output.Advance(received);
                session.AddBytesOut(received);

                // A full buffer means more is probably waiting: skip the zero-byte wait on a busy stream.
                drained = received < memory.Length;

                var flush = await output.FlushAsync(closing).ConfigureAwait(false);
                if (flush.IsCompleted)
                {
                    // Kestrel stopped sending to the client: the client is gone.
                    session.Close(ReasonClientClosed);
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (closing.IsCancellationRequested)
        {
            // Closed by the proxy or by the other direction's failure.
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            session.Close(ReasonBackendFailed);
        }
        catch (Exception)
        {
            session.Close(ReasonClientFailed);
        }
        finally
        {
            // Completing Kestrel's output sends the FIN to the client (Kestrel closes its socket both ways then).
            await output.CompleteAsync().ConfigureAwait(false);
        }
    }
}
