using System.Runtime.InteropServices;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using PatroniYarp.Configuration;

namespace PatroniYarp.Tests.Configuration;

public sealed class SighupReloadServiceTests : IDisposable
{
    private readonly TempConfigDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task OnSignal_Sighup_KeepsTheProcessAndReReadsTheFiles()
    {
        var path = _dir.Write("patroni.yaml", ConfigurationSamples.Minimal);
        using var root = (ConfigurationRoot)new ConfigurationBuilder().AddYamlFile(path).Build();
        var logs = new CapturingLoggerProvider();
        using var monitor = new ProxyOptionsMonitor(root, logs.CreateLogger<ProxyOptionsMonitor>());
        using var service = new SighupReloadService(monitor, logs.CreateLogger<SighupReloadService>());
        await service.StartAsync(CancellationToken.None);

        _dir.Write("patroni.yaml", ConfigurationSamples.Minimal.Replace("6432", "6500"));
        var context = new PosixSignalContext(PosixSignal.SIGHUP);
        service.OnSignal(context);

        Assert.True(context.Cancel);
        Assert.Equal("127.0.0.1:6500", monitor.CurrentValue.Clusters["main"].Ports["master"].Listen);
        Assert.Contains(logs.Entries, e => e.Level == LogLevel.Information && e.Message.Contains("SIGHUP", StringComparison.Ordinal));
        await service.StopAsync(CancellationToken.None);
    }
}
