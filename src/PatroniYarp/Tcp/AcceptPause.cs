using System.Net;
using PatroniYarp.Diagnostics;

namespace PatroniYarp.Tcp;

/// <summary>
/// A listener that stops accepting for a while (no room under the open-files limit): its connections wait in the listen
/// backlog, accepting is tried again every <see cref="Period"/> (the listener stays readable, so trying at once would
/// spin), and the pause is logged and counted when it starts and logged when it ends, not at every try.
/// </summary>
internal sealed partial class AcceptPause(EndPoint endPoint, ProxyMetrics metrics, TimeProvider time, ILogger logger)
{
    public static readonly TimeSpan Period = TimeSpan.FromMilliseconds(100);

    private long _tries;

    /// <summary>Waits one <see cref="Period"/>; false when <paramref name="cancellationToken"/> fires (the listener is unbound).</summary>
    /// <param name="reason">The <c>reason</c> tag of <c>patroniyarp.accept.pauses</c>.</param>
    /// <param name="describe">Why, in words for the log, from <paramref name="state"/>: called when a pause starts only.</param>
    public async ValueTask<bool> WaitAsync<TState>(string reason, Func<TState, string> describe, TState state,
        CancellationToken cancellationToken)
    {
        if (_tries++ == 0)
        {
            Log.Paused(logger, endPoint, describe(state), Period.TotalMilliseconds);
            metrics.AcceptPaused(reason);
        }
        try
        {
            await Task.Delay(Period, time, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>Ends the pause under way, if any: a connection was accepted.</summary>
    public void End()
    {
        if (_tries > 0)
        {
            Log.Resumed(logger, endPoint, _tries * Period.TotalMilliseconds);
            _tries = 0;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1, Level = LogLevel.Warning,
            Message = "Not accepting connections on {EndPoint} for now: {Reason}. They wait in the listen backlog; trying again every {PauseMs} ms. Raise the open-files limit (ulimit -n) to serve more.")]
        public static partial void Paused(ILogger logger, EndPoint endPoint, string reason, double pauseMs);

        [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Accepting connections on {EndPoint} again after {PausedMs} ms")]
        public static partial void Resumed(ILogger logger, EndPoint endPoint, double pausedMs);
    }
}
