using Microsoft.Extensions.Options;
using PatroniYarp.Configuration;
using PatroniYarp.Diagnostics;

namespace PatroniYarp.Tcp;

/// <summary>
/// SIGTERM: Kestrel stops accepting and waits for open connections until the host's shutdown timeout; sessions may run
/// on for <c>drain_timeout</c> seconds, then this service closes them so that Kestrel ends gracefully. The host's
/// shutdown timeout is set a little longer (see <see cref="TcpHostingExtensions"/>). Spare connections (preconnect)
/// are closed when the drain starts: PostgreSQL gets their processes back at once.
/// </summary>
internal sealed partial class TcpDrainService(IHostApplicationLifetime lifetime, SessionRegistry registry, SpareBackends spares,
    IOptionsMonitor<ProxyOptions> options, TimeProvider timeProvider, ProxyMetrics metrics, ILogger<TcpDrainService> logger) : IHostedService, IDisposable
{
    private CancellationTokenRegistration _stopping;
    private ITimer? _timer;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        // ApplicationStopping fires before any hosted service stops, so the drain clock starts with the shutdown.
        _stopping = lifetime.ApplicationStopping.Register(static state => ((TcpDrainService)state!).StartDrain(), this);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private void StartDrain()
    {
        spares.Stop();
        var period = options.CurrentValue.DrainPeriod;
        Log.Draining(logger, registry.Count, period);
        _timer = timeProvider.CreateTimer(static state => ((TcpDrainService)state!).EndDrain(), this, period, Timeout.InfiniteTimeSpan);
    }

    private void EndDrain()
    {
        metrics.SessionsClosed(registry.OpenSessions(), ProxyMetrics.Reasons.Drain);
        var closed = registry.CloseAll("drain period over");
        if (closed > 0)
        {
            Log.DrainOver(logger, closed);
        }
    }

    public void Dispose()
    {
        _stopping.Dispose();
        _timer?.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Stopping: no new sessions; {Count} open session(s) may finish within {Period}.")]
        public static partial void Draining(ILogger logger, int count, TimeSpan period);

        [LoggerMessage(2, LogLevel.Information, "Drain period over: {Count} session(s) closed.")]
        public static partial void DrainOver(ILogger logger, int count);
    }
}
