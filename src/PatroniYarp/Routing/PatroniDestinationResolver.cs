using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Primitives;
using Polly;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.ServiceDiscovery;

namespace PatroniYarp.Routing;

/// <summary>
/// Turns member host names in tcp:// destinations into IP addresses, one destination per address, and asks YARP to
/// resolve again periodically so DNS changes are followed. IP literals and non-tcp destinations (the HTTP checks)
/// pass through. A name that cannot be resolved keeps its destination unresolved: throwing would make YARP reject
/// the whole configuration, and one bad DNS answer must not take the other members away.
/// </summary>
internal sealed partial class PatroniDestinationResolver : IDestinationResolver
{
    public static readonly TimeSpan RefreshPeriod = TimeSpan.FromSeconds(30);
    public static readonly TimeSpan ResolveTimeout = TimeSpan.FromSeconds(2);

    private readonly TimeProvider _timeProvider;
    private readonly ILogger<PatroniDestinationResolver> _logger;
    private readonly ResiliencePipeline _timeout;

    public PatroniDestinationResolver(TimeProvider timeProvider, ILogger<PatroniDestinationResolver> logger)
    {
        _timeProvider = timeProvider;
        _logger = logger;
        _timeout = new ResiliencePipelineBuilder { TimeProvider = timeProvider }.AddTimeout(ResolveTimeout).Build();
    }

    public async ValueTask<ResolvedDestinationCollection> ResolveDestinationsAsync(
        IReadOnlyDictionary<string, DestinationConfig> destinations,
        CancellationToken cancellationToken)
    {
        var pending = new List<Task<IEnumerable<KeyValuePair<string, DestinationConfig>>>>(destinations.Count);
        var anyHostName = false;
        foreach (var (id, destination) in destinations)
        {
            if (ProxyClusterIds.TryParseTcpAddress(destination.Address, out var host, out var port)
                && !IPAddress.TryParse(host, out _))
            {
                anyHostName = true;
                pending.Add(ResolveAsync(id, destination, host, port, cancellationToken));
            }
            else
            {
                pending.Add(Task.FromResult<IEnumerable<KeyValuePair<string, DestinationConfig>>>([new(id, destination)]));
            }
        }

        var resolved = new Dictionary<string, DestinationConfig>(StringComparer.Ordinal);
        foreach (var results in await Task.WhenAll(pending))
        {
            foreach (var (id, destination) in results)
            {
                resolved[id] = destination;
            }
        }

        // Re-resolve only where a name was involved; addresses never change.
        var changeToken = anyHostName
            ? new CancellationChangeToken(new CancellationTokenSource(RefreshPeriod, _timeProvider).Token)
            : null;
        return new ResolvedDestinationCollection(resolved, changeToken);
    }

    private async Task<IEnumerable<KeyValuePair<string, DestinationConfig>>> ResolveAsync(
        string id, DestinationConfig destination, string host, int port, CancellationToken cancellationToken)
    {
        IPAddress[] addresses;
        try
        {
            addresses = await _timeout.ExecuteAsync(
                static async (state, ct) => await Dns.GetHostAddressesAsync(state, ct),
                host,
                cancellationToken);
        }
        catch (Exception ex) when (ex is SocketException or Polly.Timeout.TimeoutRejectedException or ArgumentException)
        {
            Log.ResolveFailed(_logger, host, id, ex);
            return [new(id, destination)];
        }
        addresses = [.. addresses.Distinct()];
        if (addresses.Length == 0)
        {
            Log.ResolveFailed(_logger, host, id, null);
            return [new(id, destination)];
        }

        // The member name survives in the metadata when one member becomes several destinations.
        var metadata = new Dictionary<string, string>(destination.Metadata ?? new Dictionary<string, string>(), StringComparer.Ordinal);
        metadata.TryAdd(ProxyClusterIds.Metadata.Member, id);
        return addresses.Select(address => new KeyValuePair<string, DestinationConfig>(
            addresses.Length == 1 ? id : $"{id}[{address}]",
            destination with { Address = ProxyClusterIds.TcpAddress(address.ToString(), port), Metadata = metadata }));
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Could not resolve host '{Host}' of destination '{DestinationId}'; it stays unresolved until the next attempt.")]
        public static partial void ResolveFailed(ILogger logger, string host, string destinationId, Exception? exception);
    }
}
