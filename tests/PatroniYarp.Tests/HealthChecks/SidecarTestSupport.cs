using System.Collections.Concurrent;
using System.Diagnostics.Tracing;
using System.Globalization;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;

namespace PatroniYarp.Tests.HealthChecks;

/// <summary>
/// Tests that use HybridCache run one after another: <see cref="StampedeJoins"/> counts process-wide events.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class HybridCacheCollection
{
    public const string Name = "HybridCache";
}

/// <summary>PatroniYarp in a TestServer with a patroniglue configuration pointing at <paramref name="backendUrl"/>.</summary>
internal static class SidecarHost
{
    public static WebApplicationFactory<Program> Start(
        string backendUrl, double ttl = 60, double timeout = 2, double staleIfError = 0, bool insecure = false)
    {
        var backend = new Uri(backendUrl);
        var settings = new Dictionary<string, string>
        {
            ["backend:host"] = backend.Host,
            ["backend:port"] = backend.Port.ToString(CultureInfo.InvariantCulture),
            ["backend:scheme"] = backend.Scheme,
            ["backend:insecure"] = insecure ? "true" : "false",
            ["backend:timeout"] = timeout.ToString(CultureInfo.InvariantCulture),
            ["cache:ttl"] = ttl.ToString(CultureInfo.InvariantCulture),
            ["cache:interval"] = "0.05",
            ["cache:stale_if_error"] = staleIfError.ToString(CultureInfo.InvariantCulture),
        };
        return new WebApplicationFactory<Program>().WithWebHostBuilder(builder =>
        {
            foreach (var (key, value) in settings)
            {
                builder.UseSetting(key, value);
            }
        });
    }
}

/// <summary>Counts HybridCache's stampede joins: requests that waited for a call already under way instead of making one.</summary>
internal sealed class StampedeJoins : EventListener
{
    private const int StampedeJoinEventId = 12;
    private int _joins;

    public int Count => Volatile.Read(ref _joins);

    protected override void OnEventSourceCreated(EventSource eventSource)
    {
        if (eventSource.Name == "Microsoft-Extensions-HybridCache")
        {
            EnableEvents(eventSource, EventLevel.Verbose);
        }
    }

    protected override void OnEventWritten(EventWrittenEventArgs eventData)
    {
        if (eventData.EventId == StampedeJoinEventId)
        {
            Interlocked.Increment(ref _joins);
        }
    }
}

/// <summary>What a fake Patroni saw: each request's path and query, in order.</summary>
internal sealed class SeenRequests
{
    private readonly ConcurrentQueue<string> _requests = new();

    public IReadOnlyCollection<string> All => _requests;

    public void Add(Microsoft.AspNetCore.Http.HttpRequest request) => _requests.Enqueue($"{request.Method} {request.Path}{request.QueryString}");
}
