using System.Buffers;
using System.Net.Sockets;

namespace PatroniYarp.Tcp;

/// <summary>
/// Copies bytes between a client's socket and a backend's on their <see cref="SocketEventLoop"/>'s thread: when one is
/// readable, what it has is received into the loop's buffer and sent straight on. Only what the kernel does not take at
/// once moves to a buffer of the session's own, and the readable side is then not read again until it is sent, so
/// an idle session holds no buffer, no pending operation and no state machine. A FIN is passed on; a failure on either
/// socket closes the session.
/// </summary>
internal sealed class TcpForwarder : ISocketEventHandler
{
    public const string ReasonClientClosed = "client closed";
    public const string ReasonBackendClosed = "backend closed";
    public const string ReasonClientFailed = "client connection failed";
    public const string ReasonBackendFailed = "backend connection failed";

    /// <summary>HAProxy's default bufsize is 16 KiB; a bigger buffer halves the system calls of a bulk COPY.</summary>
    internal const int BufferSize = 64 * 1024;

    /// <summary>Full buffers read in a row before other sessions get their turn; level-triggered readiness brings it back.</summary>
    private const int MaxReadsPerEvent = 4;

    private const uint Readable = Epoll.In | Epoll.Err | Epoll.Hup;
    private const uint Writable = Epoll.Out | Epoll.Err | Epoll.Hup;

    private readonly EventLoopSocket _client;
    private readonly EventLoopSocket _backend;
    private readonly TcpSession _session;
    private readonly TaskCompletionSource _done = new();
    private Direction _up;
    private Direction _down;
    private bool _started;
    private volatile bool _finished;

    private TcpForwarder(EventLoopSocket client, EventLoopSocket backend, TcpSession session)
    {
        _client = client;
        _backend = backend;
        _session = session;
    }

    /// <summary>
    /// Runs until both directions have ended or the session is closed, then closes both sockets; never fails. Both must
    /// be on the same loop.
    /// </summary>
    public static Task ForwardAsync(EventLoopSocket client, EventLoopSocket backend, TcpSession session)
    {
        if (client.Loop != backend.Loop)
        {
            throw new ArgumentException("The client's and the backend's sockets must share a loop.", nameof(backend));
        }
        var forwarder = new TcpForwarder(client, backend, session);
        session.AttachSockets(client, backend);
        client.Loop.Post(forwarder);
        return forwarder._done.Task;
    }

    public bool IsFinished => _finished;

    /// <summary>First the start; after that, one of the sockets was disposed (the session closed, or Kestrel aborted it).</summary>
    void ISocketEventHandler.OnPosted()
    {
        if (_finished)
        {
            return;
        }
        if (_started)
        {
            Fail(_client.IsDisposed ? ReasonClientFailed : ReasonBackendFailed);
            return;
        }
        _started = true;
        _client.Attach(this);
        _backend.Attach(this);
        try
        {
            // Whatever arrived before (a pipelining client's next message) is reported at once: readiness is level-triggered.
            Watch();
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            Fail(_client.IsDisposed ? ReasonClientFailed : ReasonBackendFailed);
        }
    }

    void ISocketEventHandler.OnReady(EventLoopSocket socket, uint events)
    {
        if (!_finished)
        {
            Run(socket, events);
        }
    }

    private void Run(EventLoopSocket socket, uint events)
    {
        var isClient = socket == _client;
        try
        {
            if ((events & Epoll.Err) != 0)
            {
                Fail(isClient ? ReasonClientFailed : ReasonBackendFailed);
                return;
            }
            var proceed = isClient
                ? Serve(_client, _backend, ref _up, ref _down, events, isClient)
                : Serve(_backend, _client, ref _down, ref _up, events, isClient);
            if (!proceed)
            {
                return;
            }
            if (_up.Ended && _down.Ended)
            {
                Finish();
                return;
            }
            Watch();
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Unless the session was closed (and so its sockets), the socket at hand failed.
            Fail(isClient ? ReasonClientFailed : ReasonBackendFailed);
        }
    }

    /// <summary>Each socket is read while its direction flows and nothing of it waits, written to while something waits for it.</summary>
    private void Watch()
    {
        _client.SetInterest((_up.Flowing ? Epoll.In : 0) | (_down.Count > 0 ? Epoll.Out : 0));
        _backend.SetInterest((_down.Flowing ? Epoll.In : 0) | (_up.Count > 0 ? Epoll.Out : 0));
    }

    /// <summary>
    /// Sends what waits for <paramref name="socket"/>, then passes on what it has to <paramref name="other"/>;
    /// false when that ended the session.
    /// </summary>
    private bool Serve(EventLoopSocket socket, EventLoopSocket other, ref Direction reading, ref Direction writing, uint events,
        bool isClient)
    {
        if (writing.Count > 0 && (events & Writable) != 0 && !Flush(socket, ref writing, isClient))
        {
            return false;
        }
        if (reading.Flowing && (events & Readable) != 0)
        {
            return Pump(socket, other, ref reading, isClient);
        }
        return true;
    }

    /// <returns>False when the session failed.</returns>
    private bool Pump(EventLoopSocket from, EventLoopSocket to, ref Direction direction, bool fromClient)
    {
        // A stream the receiver could not keep up with reads into its own buffer until it drains: what the kernel does
        // not take then stays where it is, rather than being copied out of the loop's shared buffer each time.
        var buffer = direction.Own ?? from.Loop.Buffer;
        for (var reads = 0; reads < MaxReadsPerEvent; reads++)
        {
            var received = from.Receive(buffer, out var error);
            if (error == SocketError.WouldBlock)
            {
                return true;
            }
            if (error != SocketError.Success)
            {
                return Fail(fromClient ? ReasonClientFailed : ReasonBackendFailed);
            }
            if (received == 0)
            {
                _session.NoteEnd(fromClient ? ReasonClientClosed : ReasonBackendClosed);
                direction.Ended = true;
                try
                {
                    to.ShutdownSend();
                }
                catch (SocketException)
                {
                    return Fail(fromClient ? ReasonBackendFailed : ReasonClientFailed);
                }
                return true;
            }
            if (fromClient)
            {
                _session.AddBytesIn(received);
            }
            else
            {
                _session.AddBytesOut(received);
            }

            var sent = to.Send(buffer.AsSpan(0, received), out error);
            if (error == SocketError.WouldBlock)
            {
                sent = 0;
            }
            else if (error != SocketError.Success)
            {
                return Fail(fromClient ? ReasonBackendFailed : ReasonClientFailed);
            }
            if (sent < received)
            {
                // The receiver is slower: keep the rest and stop reading this side until it is sent.
                if (direction.Own is null)
                {
                    direction.Own = ArrayPool<byte>.Shared.Rent(BufferSize);
                    buffer.AsSpan(sent, received - sent).CopyTo(direction.Own);
                    received -= sent;
                    sent = 0;
                }
                direction.Offset = sent;
                direction.Count = received - sent;
                return true;
            }
            if (received < buffer.Length)
            {
                // Drained: an idle stream holds no buffer.
                direction.Release();
                return true;
            }
        }
        return true;
    }

    /// <returns>False when the session failed.</returns>
    private bool Flush(EventLoopSocket to, ref Direction direction, bool toClient)
    {
        var sent = to.Send(direction.Own.AsSpan(direction.Offset, direction.Count), out var error);
        if (error == SocketError.WouldBlock)
        {
            return true;
        }
        if (error != SocketError.Success)
        {
            return Fail(toClient ? ReasonClientFailed : ReasonBackendFailed);
        }
        direction.Offset += sent;
        direction.Count -= sent;
        return true;
    }

    /// <returns>False, for the caller to return.</returns>
    private bool Fail(string reason)
    {
        // The proxy (or an abort) may have closed the session first: its reason stands.
        if (!_session.Closing.IsCancellationRequested)
        {
            _session.Close(reason);
        }
        Finish();
        return false;
    }

    private void Finish()
    {
        if (_finished)
        {
            return;
        }
        _finished = true;
        _up.Release();
        _down.Release();
        // Closed here rather than taken out of epoll first (two calls fewer per session): a socket whose both directions
        // ended would keep reporting its hang-up until its owner disposed it.
        _client.Dispose();
        _backend.Dispose();
        _done.TrySetResult();
    }

    /// <summary>
    /// One direction of the copy: its end seen; its own buffer while the stream is busy and its receiver slower; and
    /// what of it the receiver has not taken yet (<see cref="Offset"/>, <see cref="Count"/>).
    /// </summary>
    private struct Direction
    {
        public byte[]? Own;
        public int Offset;
        public int Count;
        public bool Ended;

        /// <summary>Read on: not ended, and nothing waits for the receiver.</summary>
        public readonly bool Flowing => !Ended && Count == 0;

        public void Release()
        {
            if (Own is not null)
            {
                ArrayPool<byte>.Shared.Return(Own);
                Own = null;
            }
            Count = 0;
        }
    }
}
