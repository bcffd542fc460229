using System.Net.Sockets;

namespace PatroniYarp.Tcp;

internal enum HoldOutcome
{
    /// <summary>The port's destinations changed: look again.</summary>
    Changed,
    /// <summary>Still waiting: time to ask for a poll again (see <see cref="HeldSession.WaitAsync"/>).</summary>
    Renew,
    TimedOut,
    ClientGone,
}

/// <summary>
/// One client session held until its port has a destination: holds a max_waiting slot of the port, and watches the
/// client's socket meanwhile without taking its bytes (its startup was already read, see <see cref="PostgresStartup"/>;
/// anything it sends after that stays in the socket for the forwarder), so a client that goes away is noticed at once
/// and its slot given back.
/// </summary>
internal sealed class HeldSession
{
    private readonly HeldSessions _owner;
    private readonly string _clusterId;
    private readonly EventLoopSocket _client;
    private readonly CancellationToken _clientClosed;
    private readonly TimeProvider _time;
    private readonly CancellationTokenSource _stopWatching = new();
    private readonly Task<bool> _watch;
    private int _released;

    private HeldSession(HeldSessions owner, string clusterId, EventLoopSocket client, CancellationToken clientClosed, TimeProvider time,
        TimeSpan timeout)
    {
        _owner = owner;
        _clusterId = clusterId;
        _client = client;
        _clientClosed = clientClosed;
        _time = time;
        Started = time.GetUtcNow();
        Deadline = Started + timeout;
        _watch = WatchClientAsync();
    }

    public DateTimeOffset Started { get; }

    public DateTimeOffset Deadline { get; }

    /// <summary>The watch saw the client close or fail.</summary>
    private bool ClientGone => _clientClosed.IsCancellationRequested || _watch.IsCompletedSuccessfully && _watch.Result;

    /// <summary>Holds the session when the port has a free slot, else null (the caller refuses it).</summary>
    public static HeldSession? TryStart(HeldSessions owner, string clusterId, int maxWaiting, EventLoopSocket client,
        CancellationToken clientClosed, TimeProvider time, TimeSpan timeout) =>
        owner.TryHold(clusterId, maxWaiting) ? new HeldSession(owner, clusterId, client, clientClosed, time, timeout) : null;

    /// <summary>
    /// Waits for <paramref name="changed"/> (from <see cref="HeldSessions.WhenChanged"/>), the deadline or the client
    /// leaving; or returns <see cref="HoldOutcome.Renew"/> after <paramref name="renewAfter"/>.
    /// </summary>
    public async Task<HoldOutcome> WaitAsync(Task changed, TimeSpan renewAfter)
    {
        if (ClientGone)
        {
            return HoldOutcome.ClientGone;
        }
        var remaining = Deadline - _time.GetUtcNow();
        if (remaining <= TimeSpan.Zero)
        {
            return HoldOutcome.TimedOut;
        }

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(_clientClosed);
        var renew = remaining > renewAfter;
        var timeout = Task.Delay(renew ? renewAfter : remaining, _time, stop.Token);
        // A watch that ended with the client still there (it sent more) has nothing left to tell.
        var first = _watch.IsCompleted
            ? await Task.WhenAny(changed, timeout).ConfigureAwait(false)
            : await Task.WhenAny(changed, timeout, _watch).ConfigureAwait(false);
        await stop.CancelAsync().ConfigureAwait(false);
        if (ClientGone)
        {
            return HoldOutcome.ClientGone;
        }
        return first == changed ? HoldOutcome.Changed
            : first == _watch || renew ? HoldOutcome.Renew
            : HoldOutcome.TimedOut;
    }

    /// <summary>
    /// Hands the client over to a connected backend: stops watching it and gives the slot back. Whatever the client
    /// sent while held is still in its socket; the forwarder takes it from there.
    /// </summary>
    /// <returns>False when the client went away while held.</returns>
    public async Task<bool> HandOverAsync() => !await EndAsync().ConfigureAwait(false);

    /// <summary>Ends the hold without a backend (timed out, refused, the client left): the slot is given back.</summary>
    public Task ReleaseAsync() => EndAsync();

    /// <returns>Whether the client went away.</returns>
    private async Task<bool> EndAsync()
    {
        await _stopWatching.CancelAsync().ConfigureAwait(false);
        await _watch.ConfigureAwait(false);
        if (Interlocked.Exchange(ref _released, 1) == 0)
        {
            _owner.Release(_clusterId);
        }
        return ClientGone;
    }

    /// <summary>
    /// Waits until the client's socket is readable, taking nothing from it: true when that is its close or a reset;
    /// false when it sent more (a pipelining client is there; its bytes wait for the forwarder) or the watch was stopped.
    /// </summary>
    private async Task<bool> WatchClientAsync()
    {
        try
        {
            await _client.WaitReadableAsync(_stopWatching.Token).ConfigureAwait(false);
            return _client.Available == 0 && IsClosed(_client);
        }
        catch (OperationCanceledException) when (_stopWatching.IsCancellationRequested)
        {
            return false;
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            return true;
        }
    }

    /// <summary>Peeks one byte of a readable socket: none means the peer closed; an error, that it failed.</summary>
    private static bool IsClosed(EventLoopSocket socket)
    {
        Span<byte> one = stackalloc byte[1];
        // The socket does not block: a spurious wake-up is WouldBlock, the client still there.
        var peeked = socket.Receive(one, out var error, peek: true);
        return error == SocketError.Success ? peeked == 0 : error != SocketError.WouldBlock;
    }
}
