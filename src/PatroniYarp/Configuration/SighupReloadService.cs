using System.Runtime.InteropServices;

namespace PatroniYarp.Configuration;

/// <summary>SIGHUP re-reads the configuration files at once, as it does for patroni_proxy.</summary>
internal sealed partial class SighupReloadService(ProxyOptionsMonitor monitor, ILogger<SighupReloadService> logger) : IHostedService, IDisposable
{
    private PosixSignalRegistration? _registration;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _registration = PosixSignalRegistration.Create(PosixSignal.SIGHUP, OnSignal);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        Dispose();
        return Task.CompletedTask;
    }

    public void Dispose()
    {
        _registration?.Dispose();
        _registration = null;
    }

    internal void OnSignal(PosixSignalContext context)
    {
        // Left alone, SIGHUP ends the process.
        context.Cancel = true;
        Log.ReloadRequested(logger);
        monitor.Reload();
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "SIGHUP received: re-reading the configuration", EventName = "ReloadRequested")]
        public static partial void ReloadRequested(ILogger logger);
    }
}
