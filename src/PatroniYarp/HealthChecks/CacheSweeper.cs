using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using PatroniYarp.Configuration;

namespace PatroniYarp.HealthChecks;

/// <summary>
/// Every cache <c>interval</c> (read anew each round, so a reload applies), removes expired check answers from the
/// memory cache behind HybridCache and last good answers older than stale_if_error. Expired answers are never served
/// in between (the cache checks expiry on read); the sweep only gives their memory back on time.
/// </summary>
internal sealed class CacheSweeper(IMemoryCache memoryCache, SidecarCheckClient client, IOptionsMonitor<ProxyOptions> options, TimeProvider time)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                await Task.Delay(options.CurrentValue.Cache.IntervalPeriod, time, stoppingToken);
                // Compact(0) removes the expired entries and nothing else.
                (memoryCache as MemoryCache)?.Compact(0);
                client.SweepLastGood();
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }
}
