using System.Buffers;
using System.IO.Pipelines;
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
/// client meanwhile without consuming its bytes (the PostgreSQL startup packet stays in Kestrel's pipe until it is
/// handed to the backend), so a client that goes away is noticed at once and its slot given back.
/// </summary>
internal sealed class HeldSession
{
    private readonly HeldSessions _owner;
    private readonly string _clusterId;
    private readonly PipeReader _input;
    private readonly CancellationToken _clientClosed;
    private readonly TimeProvider _time;
    private readonly Task<bool> _watch;
    private ReadOnlySequence<byte> _buffered;
    private int _readOpen;
    private int _released;

    private HeldSession(HeldSessions owner, string clusterId, PipeReader input, CancellationToken clientClosed, TimeProvider time,
        TimeSpan timeout)
    {
        _owner = owner;
        _clusterId = clusterId;
        _input = input;
        _clientClosed = clientClosed;
        _time = time;
        Started = time.GetUtcNow();
        Deadline = Started + timeout;
        _watch = WatchClientAsync();
    }

    public DateTimeOffset Started { get; }

    public DateTimeOffset Deadline { get; }

    /// <summary>Holds the session when the port has a free slot, else null (the caller refuses it).</summary>
    public static HeldSession? TryStart(HeldSessions owner, string clusterId, int maxWaiting, PipeReader input,
        CancellationToken clientClosed, TimeProvider time, TimeSpan timeout) =>
        owner.TryHold(clusterId, maxWaiting) ? new HeldSession(owner, clusterId, input, clientClosed, time, timeout) : null;

    /// <summary>
    /// Waits for <paramref name="changed"/> (from <see cref="HeldSessions.WhenChanged"/>), the deadline or the client
    /// leaving; or returns <see cref="HoldOutcome.Renew"/> after <paramref name="renewAfter"/>.
    /// </summary>
    public async Task<HoldOutcome> WaitAsync(Task changed, TimeSpan renewAfter)
    {
        var remaining = Deadline - _time.GetUtcNow();
        if (_watch.IsCompleted || _clientClosed.IsCancellationRequested)
        {
            return HoldOutcome.ClientGone;
        }
        if (remaining <= TimeSpan.Zero)
        {
            return HoldOutcome.TimedOut;
        }

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(_clientClosed);
        var renew = remaining > renewAfter;
        var timeout = Task.Delay(renew ? renewAfter : remaining, _time, stop.Token);
        var first = await Task.WhenAny(changed, timeout, _watch).ConfigureAwait(false);
        await stop.CancelAsync().ConfigureAwait(false);
        if (_watch.IsCompleted || _clientClosed.IsCancellationRequested)
        {
            return HoldOutcome.ClientGone;
        }
        return first == changed ? HoldOutcome.Changed : renew ? HoldOutcome.Renew : HoldOutcome.TimedOut;
    }

    /// <summary>
    /// Hands the client over to a connected backend: stops watching it, sends the bytes it sent while held (still in
    /// Kestrel's pipe) to <paramref name="backend"/>, and gives the slot back. The forwarder takes it from there.
    /// </summary>
    /// <returns>The bytes sent; -1 when the client went away while held or the backend failed at once.</returns>
    public async Task<long> HandOverAsync(Socket backend, CancellationToken cancellationToken)
    {
        var gone = await StopWatchingAsync().ConfigureAwait(false);
        try
        {
            if (gone)
            {
                return -1;
            }
            long sent = 0;
            foreach (var segment in _buffered)
            {
                var remaining = segment;
                while (!remaining.IsEmpty)
                {
                    var count = await backend.SendAsync(remaining, SocketFlags.None, cancellationToken).ConfigureAwait(false);
                    remaining = remaining[count..];
                    sent += count;
                }
            }
            return sent;
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException)
        {
            return -1;
        }
        finally
        {
            FinishRead(_buffered.End);
            ReleaseSlot();
        }
    }

    /// <summary>Ends the hold without a backend (timed out, refused, the client left): the slot is given back.</summary>
    public async Task ReleaseAsync()
    {
        if (!await StopWatchingAsync().ConfigureAwait(false))
        {
            FinishRead(_buffered.Start);
        }
        ReleaseSlot();
    }

    private async Task<bool> StopWatchingAsync()
    {
        if (!_watch.IsCompleted)
        {
            _input.CancelPendingRead();
        }
        return await _watch.ConfigureAwait(false);
    }

    /// <summary>Ends the read the watch left open when it was stopped (its buffer stayed valid until now).</summary>
    private void FinishRead(SequencePosition consumed)
    {
        if (Interlocked.Exchange(ref _readOpen, 0) == 1)
        {
            _input.AdvanceTo(consumed, _buffered.End);
        }
    }

    private void ReleaseSlot()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0)
        {
            _owner.Release(_clusterId);
        }
    }

    /// <summary>
    /// Waits for the client to close or fail (true). Stopped by a cancelled read (false), it leaves that read open with
    /// everything the client sent so far in <see cref="_buffered"/>: a buffer can only be handed on before AdvanceTo,
    /// and a pipe cannot be made to return bytes it was told were examined.
    /// </summary>
    private async Task<bool> WatchClientAsync()
    {
        try
        {
            while (true)
            {
                var result = await _input.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                if (result.IsCompleted)
                {
                    _input.AdvanceTo(buffer.End);
                    return true;
                }
                if (result.IsCanceled)
                {
                    _buffered = buffer;
                    Volatile.Write(ref _readOpen, 1);
                    return false;
                }
                // Examined, not consumed: the next read waits for more bytes (or the end) instead of returning at once.
                _input.AdvanceTo(buffer.Start, buffer.End);
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or InvalidOperationException)
        {
            // A reset or aborted connection.
            return true;
        }
    }
}
