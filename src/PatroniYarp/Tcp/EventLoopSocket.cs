using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Threading.Tasks.Sources;

namespace PatroniYarp.Tcp;

/// <summary>
/// A non-blocking socket of a TCP port, served by a <see cref="SocketEventLoop"/> instead of .NET's socket engine, which
/// never sees it: it is a bare descriptor (no <see cref="System.Net.Sockets.Socket"/>), and every call on it
/// (<see cref="NativeSocket"/>) returns WouldBlock rather than waiting. Until a forwarder takes it (<see cref="Attach"/>),
/// its owner awaits readiness one wait at a time; the continuation runs on the loop's thread.
/// </summary>
internal sealed class EventLoopSocket : IValueTaskSource, IDisposable
{
    private readonly SafeHandle _handle;
    private ManualResetValueTaskSourceCore<bool> _wait;
    private CancellationTokenRegistration _cancellation;
    private ISocketEventHandler? _handler;
    private uint _interest;
    private bool _registered;
    private int _waiting;
    private int _disposed;

    /// <param name="handle">A non-blocking socket (<see cref="NativeSocket"/> makes only such); this object owns it.</param>
    /// <param name="remoteEndPoint">Its peer, when known.</param>
    public EventLoopSocket(SocketEventLoop loop, SafeHandle handle, IPEndPoint? remoteEndPoint)
    {
        Loop = loop;
        _handle = handle;
        RemoteEndPoint = remoteEndPoint;
        Token = loop.Register(this);
    }

    public SocketEventLoop Loop { get; }

    /// <summary>The loop's slot and its generation: what epoll hands back for this socket.</summary>
    public ulong Token { get; }

    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>The client's address as accepted, or the backend's as connected to.</summary>
    public IPEndPoint? RemoteEndPoint { get; }

    /// <summary>Bytes waiting to be received.</summary>
    public int Available => NativeSocket.Available(_handle);

    public IPEndPoint? LocalEndPoint => NativeSocket.LocalEndPoint(_handle);

    /// <summary>Bytes received (0: the peer's end), or -1 and why (WouldBlock: nothing there yet); <paramref name="peek"/> leaves them there.</summary>
    public int Receive(Span<byte> buffer, out SocketError error, bool peek = false) => NativeSocket.Receive(_handle, buffer, peek, out error);

    /// <summary>Bytes the kernel took, or -1 and why (WouldBlock: its buffer is full).</summary>
    public int Send(ReadOnlySpan<byte> data, out SocketError error) => NativeSocket.Send(_handle, data, out error);

    /// <summary>Passes an end on (FIN) while the other direction goes on.</summary>
    public void ShutdownSend()
    {
        if (NativeSocket.ShutdownSend(_handle) is not SocketError.Success and var error)
        {
            throw new SocketException((int)error);
        }
    }

    /// <summary>
    /// A connection waiting on a listening socket, served by the loop <paramref name="chooseLoop"/> gives for its
    /// peer; null when none is waiting (or it went away).
    /// </summary>
    /// <exception cref="SocketException">Out of descriptors or memory: the connection stays queued.</exception>
    public EventLoopSocket? Accept(Func<SocketEventLoop> chooseLoop)
    {
        var accepted = NativeSocket.Accept(_handle, out var remote, out var error);
        if (accepted is null)
        {
            return NativeSocket.IsOutOfResources(error)
                ? throw new SocketException((int)error)
                : null;
        }
        NativeSocket.SetNoDelay(accepted);
        return new EventLoopSocket(chooseLoop(), accepted, remote);
    }

    /// <summary>
    /// Connects a new socket on <paramref name="loop"/> (a host name's addresses in turn); the connect itself never
    /// blocks, so a member that does not answer costs no thread.
    /// </summary>
    public static async Task<EventLoopSocket> ConnectAsync(SocketEventLoop loop, EndPoint target, CancellationToken cancellationToken)
    {
        if (target is IPEndPoint ip)
        {
            return await ConnectOnceAsync(loop, ip, cancellationToken).ConfigureAwait(false);
        }
        var dns = (DnsEndPoint)target;
        SocketException? last = null;
        foreach (var address in await Dns.GetHostAddressesAsync(dns.Host, cancellationToken).ConfigureAwait(false))
        {
            try
            {
                return await ConnectOnceAsync(loop, new IPEndPoint(address, dns.Port), cancellationToken).ConfigureAwait(false);
            }
            catch (SocketException ex)
            {
                last = ex;
            }
        }
        throw last ?? new SocketException((int)SocketError.HostNotFound);
    }

    private static async Task<EventLoopSocket> ConnectOnceAsync(SocketEventLoop loop, IPEndPoint target, CancellationToken cancellationToken)
    {
        var handle = NativeSocket.Create(target.AddressFamily);
        NativeSocket.SetNoDelay(handle);
        var connecting = new EventLoopSocket(loop, handle, target);
        try
        {
            var error = NativeSocket.Connect(handle, target);
            if (error == SocketError.WouldBlock)
            {
                // Under way: writable once it is done either way.
                if (!NativeSocket.HasConnectEnded(handle))
                {
                    await connecting.WaitAsync(Epoll.Out, cancellationToken).ConfigureAwait(false);
                }
                error = NativeSocket.PendingError(handle);
            }
            return error == SocketError.Success ? connecting : throw new SocketException((int)error);
        }
        catch
        {
            connecting.Dispose();
            throw;
        }
    }

    /// <summary>Receives what is there, waiting for readiness first when nothing is; 0 at the peer's end.</summary>
    public async ValueTask<int> ReceiveAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        while (true)
        {
            var received = Receive(buffer.Span, out var error);
            if (error == SocketError.Success)
            {
                return received;
            }
            if (error != SocketError.WouldBlock)
            {
                throw new SocketException((int)error);
            }
            await WaitAsync(Epoll.In, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Sends all of <paramref name="data"/>, waiting whenever the kernel's buffer is full.</summary>
    public async ValueTask SendAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        while (true)
        {
            var sent = Send(data.Span, out var error);
            if (error == SocketError.Success)
            {
                data = data[sent..];
                if (data.IsEmpty)
                {
                    return;
                }
            }
            else if (error != SocketError.WouldBlock)
            {
                throw new SocketException((int)error);
            }
            await WaitAsync(Epoll.Out, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Waits until the socket is readable (data, its end or an error), taking nothing from it.</summary>
    public ValueTask WaitReadableAsync(CancellationToken cancellationToken) => WaitAsync(Epoll.In, cancellationToken);

    /// <summary>
    /// One wait for <paramref name="events"/> (or an error or hang-up), armed once: it ends on readiness, on
    /// <paramref name="cancellationToken"/> (<see cref="OperationCanceledException"/>) or when the socket is disposed
    /// (<see cref="ObjectDisposedException"/>).
    /// </summary>
    private ValueTask WaitAsync(uint events, CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _waiting) != 0)
        {
            throw new InvalidOperationException("A socket of the TCP loop waits for one thing at a time.");
        }
        // Reset before the wait shows: a late event of an earlier wait (armed once, then cancelled) must find no wait
        // rather than complete the finished one again.
        _wait.Reset();
        var version = _wait.Version;
        Volatile.Write(ref _waiting, 1);
        if (IsDisposed)
        {
            Complete(new ObjectDisposedException(nameof(EventLoopSocket)));
        }
        else
        {
            if (cancellationToken.CanBeCanceled)
            {
                _cancellation = cancellationToken.UnsafeRegister(
                    static (state, token) => ((EventLoopSocket)state!).Complete(new OperationCanceledException(token)), this);
            }
            try
            {
                SetInterest(events | Epoll.OneShot);
            }
            catch (Exception ex)
            {
                Complete(ex);
            }
        }
        return new ValueTask(this, version);
    }

    private void Complete(Exception? error)
    {
        if (Interlocked.Exchange(ref _waiting, 0) == 0)
        {
            return;
        }
        if (error is null)
        {
            _wait.SetResult(true);
        }
        else
        {
            _wait.SetException(error);
        }
    }

    /// <summary>From now on readiness goes to <paramref name="handler"/>, on the loop's thread.</summary>
    public void Attach(ISocketEventHandler handler) => _handler = handler;

    /// <summary>From now on readiness ends this socket's waits again (a spare handed to a client).</summary>
    public void Detach() => _handler = null;

    /// <summary>
    /// What epoll reports for this socket from now on, level-triggered (or once, with <see cref="Epoll.OneShot"/>);
    /// 0 takes it out of the set, so a socket nobody waits on reports nothing, not even a hang-up.
    /// </summary>
    public void SetInterest(uint events)
    {
        if (events == _interest && (events & Epoll.OneShot) == 0)
        {
            return;
        }
        // Keeps the descriptor from being closed, and its number reused, while epoll is told about it.
        using var handle = new NativeSocket.Use(_handle);
        var error = Epoll.Control(Loop.Descriptor, handle.Fd, events, Token, _registered);
        if (error != 0)
        {
            throw new SocketException((int)NativeSocket.ToSocketError(error));
        }
        _registered = events != 0;
        _interest = events;
    }

    internal void OnEvents(uint events)
    {
        if (_handler is { } handler)
        {
            handler.OnReady(this, events);
        }
        else
        {
            Complete(null);
        }
    }

    /// <summary>
    /// Closes the socket (epoll forgets it with its descriptor), ends a wait, and tells a forwarder on its loop's thread.
    /// Safe from any thread, and more than once.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        Loop.Unregister(Token);
        _handle.Dispose();
        if (Volatile.Read(ref _waiting) != 0)
        {
            // Only for a wait: every session disposes two sockets, and an exception object is not free.
            Complete(new ObjectDisposedException(nameof(EventLoopSocket)));
        }
        if (_handler is { } handler && !handler.IsFinished)
        {
            Loop.Post(handler);
        }
    }

    void IValueTaskSource.GetResult(short token)
    {
        // Waits for a cancellation callback under way, so a late one cannot end the next wait.
        _cancellation.Dispose();
        _cancellation = default;
        try
        {
            _wait.GetResult(token);
        }
        finally
        {
            // Let go of the awaiter's continuation and context now: a forwarded session never waits again, and its
            // socket would keep the last awaiting state machine (and the buffer it read into) alive for its whole life.
            _wait.Reset();
        }
    }

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _wait.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token,
        ValueTaskSourceOnCompletedFlags flags) => _wait.OnCompleted(continuation, state, token, flags);
}
