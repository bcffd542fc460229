using System.Collections.Concurrent;

namespace PatroniYarp.Tcp;

/// <summary>Told of its socket's readiness on the loop's thread, and of work posted to it (<see cref="SocketEventLoop.Post"/>).</summary>
internal interface ISocketEventHandler
{
    /// <summary>Done with its sockets: their disposal need not be posted (read from any thread; a stale false only posts once more).</summary>
    bool IsFinished { get; }

    void OnReady(EventLoopSocket socket, uint events);

    void OnPosted();
}

/// <summary>
/// One thread waiting in epoll for the TCP ports' sockets, level-triggered. .NET's own socket engine gives every socket
/// an async context, event args and a speculative receive per message; this loop keeps a socket as its file descriptor,
/// one small registration and whatever its owner needs: an idle session holds no buffer and no pending operation, and a
/// busy one is served on this thread with one receive and one send per message (see <see cref="TcpForwarder"/>).
/// Handlers run on the loop's thread and must never block.
/// </summary>
internal sealed unsafe partial class SocketEventLoop : IDisposable
{
    private const int MaxEvents = 256;

    /// <summary>The eventfd's registration: slot numbers are 32-bit, so no socket's token is this.</summary>
    private const ulong WakeToken = ulong.MaxValue;

    private readonly int _epoll;
    private readonly int _wake;
    private readonly Thread _thread;
    private readonly ILogger _logger;
    private readonly ConcurrentQueue<ISocketEventHandler> _posted = new();
    private readonly Lock _slotsLock = new();
    private readonly Stack<int> _freeSlots = new();
    private EventLoopSocket?[] _slots = new EventLoopSocket?[64];
    private int _usedSlots;
    private uint _generation;
    private int _wakePending;
    private volatile bool _stopping;

    public SocketEventLoop(string name, ILogger logger)
    {
        _logger = logger;
        _epoll = Epoll.Create();
        try
        {
            _wake = Epoll.CreateEventFd();
            var error = Epoll.Control(_epoll, _wake, Epoll.In, WakeToken, registered: false);
            if (error != 0)
            {
                throw new InvalidOperationException($"epoll_ctl for the loop's eventfd failed (errno {error}).");
            }
        }
        catch
        {
            Epoll.Close(_epoll);
            throw;
        }
        _thread = new Thread(Run) { IsBackground = true, Name = name };
        _thread.Start();
    }

    public int Descriptor => _epoll;

    /// <summary>
    /// The forwarder's buffer, shared by every session of this loop: a message is received into it and sent on at once,
    /// and what the kernel does not take yet moves to a buffer of the session's own (only the loop's thread uses it).
    /// </summary>
    public byte[] Buffer { get; } = GC.AllocateUninitializedArray<byte>(TcpForwarder.BufferSize);

    public bool IsLoopThread => Environment.CurrentManagedThreadId == _thread.ManagedThreadId;

    /// <summary>
    /// Runs <paramref name="handler"/>'s <see cref="ISocketEventHandler.OnPosted"/> on the loop's thread: at once when
    /// called there (a session's start usually is: its backend's reply was awaited on the loop), else soon.
    /// </summary>
    public void Post(ISocketEventHandler handler)
    {
        if (IsLoopThread)
        {
            handler.OnPosted();
            return;
        }
        if (_stopping)
        {
            // Stopped with the host, after Kestrel closed every connection: its eventfd may be closed already.
            return;
        }
        _posted.Enqueue(handler);
        if (Interlocked.Exchange(ref _wakePending, 1) == 0)
        {
            Epoll.Signal(_wake);
        }
    }

    /// <summary>A slot for a socket's events; the token (slot and generation) is what epoll hands back.</summary>
    public ulong Register(EventLoopSocket socket)
    {
        lock (_slotsLock)
        {
            if (!_freeSlots.TryPop(out var slot))
            {
                if (_usedSlots == _slots.Length)
                {
                    var larger = new EventLoopSocket?[_slots.Length * 2];
                    _slots.CopyTo(larger, 0);
                    Volatile.Write(ref _slots, larger);
                }
                slot = _usedSlots++;
            }
            _slots[slot] = socket;
            return (uint)slot | (ulong)++_generation << 32;
        }
    }

    /// <summary>Frees the slot: events already fetched for it no longer reach the socket.</summary>
    public void Unregister(ulong token)
    {
        lock (_slotsLock)
        {
            var slot = (int)(uint)token;
            if (_slots[slot]?.Token == token)
            {
                _slots[slot] = null;
                _freeSlots.Push(slot);
            }
        }
    }

    private void Run()
    {
        var events = stackalloc byte[MaxEvents * Epoll.EventSize];
        while (!_stopping)
        {
            int count;
            try
            {
                count = Epoll.Wait(_epoll, events, MaxEvents);
            }
            catch (InvalidOperationException ex)
            {
                Log.LoopFailed(_logger, _thread.Name, ex);
                return;
            }
            for (var i = 0; i < count; i++)
            {
                var (ready, token) = Epoll.Read(events, i);
                if (token == WakeToken)
                {
                    RunPosted();
                    continue;
                }
                var slots = Volatile.Read(ref _slots);
                var slot = (int)(uint)token;
                if (slot < slots.Length && slots[slot] is { } socket && socket.Token == token)
                {
                    Dispatch(socket, ready);
                }
            }
        }
    }

    private void Dispatch(EventLoopSocket socket, uint ready)
    {
        try
        {
            socket.OnEvents(ready);
        }
        catch (Exception ex)
        {
            // A handler's bug must not take every other session down with the loop.
            Log.HandlerFailed(_logger, ex);
        }
    }

    private void RunPosted()
    {
        Epoll.Drain(_wake);
        Volatile.Write(ref _wakePending, 0);
        while (_posted.TryDequeue(out var handler))
        {
            try
            {
                handler.OnPosted();
            }
            catch (Exception ex)
            {
                Log.HandlerFailed(_logger, ex);
            }
        }
    }

    public void Dispose()
    {
        if (_stopping)
        {
            return;
        }
        _stopping = true;
        Epoll.Signal(_wake);
        if (!IsLoopThread)
        {
            _thread.Join();
        }
        Epoll.Close(_wake);
        Epoll.Close(_epoll);
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Critical, "The TCP event loop {Name} stopped; its sessions no longer move.")]
        public static partial void LoopFailed(ILogger logger, string? name, Exception error);

        [LoggerMessage(2, LogLevel.Error, "A TCP session's event handler failed.")]
        public static partial void HandlerFailed(ILogger logger, Exception error);
    }
}

/// <summary>The TCP ports' event loops, one per two cores as .NET's socket engine had; connections are spread round robin.</summary>
internal sealed class SocketEventLoops : IDisposable
{
    private readonly SocketEventLoop[] _loops;
    private uint _next;

    public SocketEventLoops(ILogger<SocketEventLoop> logger)
    {
        var count = Math.Max(1, Environment.ProcessorCount / 2);
        _loops = new SocketEventLoop[count];
        for (var i = 0; i < count; i++)
        {
            _loops[i] = new SocketEventLoop($"TCP loop {i}", logger);
        }
    }

    /// <summary>A new connection's loop; its backend socket joins the same one.</summary>
    public SocketEventLoop Next() => _loops[Interlocked.Increment(ref _next) % (uint)_loops.Length];

    public void Dispose()
    {
        foreach (var loop in _loops)
        {
            loop.Dispose();
        }
    }
}
