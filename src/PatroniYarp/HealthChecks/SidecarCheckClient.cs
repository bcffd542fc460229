using System.Globalization;
using System.Collections.Concurrent;
using Microsoft.Extensions.Caching.Hybrid;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Timeout;
using PatroniYarp.Configuration;
using PatroniYarp.Diagnostics;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;

namespace PatroniYarp.HealthChecks;

/// <summary>
/// Answers a sidecar check (/primary, /replica, … of the configured Patroni) from HybridCache: concurrent misses for
/// one path + query share one call to Patroni (HybridCache's stampede protection; the call is cancelled only when
/// every waiting client has gone), and each answer, 503 included, is kept for the cache ttl. The call itself is
/// YARP's forwarder on the route's cluster (its HttpClient, its destination), into a buffer instead of a client,
/// bounded by a Polly timeout. What HybridCache cannot do is here: the timeout answer and stale_if_error.
/// </summary>
internal sealed partial class SidecarCheckClient
{
    // ttl 0: nothing is kept, but concurrent requests still share one call.
    private static readonly HybridCacheEntryOptions NoStore = new()
    {
        Flags = HybridCacheEntryFlags.DisableLocalCache | HybridCacheEntryFlags.DisableDistributedCache,
    };

    private readonly HybridCache _cache;
    private readonly IHttpForwarder _forwarder;
    private readonly IOptionsMonitor<ProxyOptions> _options;
    private readonly TimeProvider _time;
    private readonly ILogger<SidecarCheckClient> _logger;
    private readonly ProxyMetrics _metrics;
    private readonly ConcurrentDictionary<string, LastGood> _lastGood = new(StringComparer.Ordinal);
    private volatile TimeoutPipeline? _timeout;
    private volatile TtlEntryOptions? _entryOptions;

    public SidecarCheckClient(HybridCache cache, IHttpForwarder forwarder, IOptionsMonitor<ProxyOptions> options, TimeProvider time,
        ProxyMetrics metrics, ILogger<SidecarCheckClient> logger)
    {
        _metrics = metrics;
        _cache = cache;
        _forwarder = forwarder;
        _options = options;
        _time = time;
        _logger = logger;
    }

    /// <summary>The answer for the request's path and query from the route's cluster (the one Patroni backend).</summary>
    public ValueTask<CheckAnswer> GetAsync(HttpContext context, IReverseProxyFeature proxy)
    {
        var options = _options.CurrentValue;
        if (proxy.AllDestinations is not [var destination, ..])
        {
            return ValueTask.FromResult(CheckAnswer.Failure(CheckAnswer.Error, "no Patroni backend configured"));
        }
        var request = new BackendCall(this, destination.Model.Config.Address, proxy.Cluster.HttpClient,
            context.Request.Path, context.Request.QueryString, options);
        _metrics.HealthCheckRequested(request.Path);
        return _cache.GetOrCreateAsync(request.Key, request, static (call, token) => call.Client.FetchMeasuredAsync(call, token),
            EntryOptionsFor(options.Cache), cancellationToken: context.RequestAborted);
    }

    /// <summary>Drops last good answers older than stale_if_error (all of them when it is off).</summary>
    public void SweepLastGood()
    {
        var keep = _options.CurrentValue.Cache.StaleIfErrorPeriod;
        var now = _time.GetUtcNow();
        foreach (var (key, last) in _lastGood)
        {
            if (now - last.At > keep)
            {
                _lastGood.TryRemove(new KeyValuePair<string, LastGood>(key, last));
            }
        }
    }

    /// <summary>A cache miss: the one call to Patroni that the cache makes for this key, timed.</summary>
    private async ValueTask<CheckAnswer> FetchMeasuredAsync(BackendCall call, CancellationToken cancellationToken)
    {
        var started = _time.GetTimestamp();
        var answer = await FetchAsync(call, cancellationToken);
        _metrics.HealthCheckBackendCalled(call.Path, _time.GetElapsedTime(started), answer.BackendState ?? answer.Status.ToString(CultureInfo.InvariantCulture));
        return answer;
    }

    private async ValueTask<CheckAnswer> FetchAsync(BackendCall call, CancellationToken cancellationToken)
    {
        var backend = call.Options.SidecarBackend!;
        var key = call.Key;
        var context = new DefaultHttpContext();
        // Always GET: HEAD and OPTIONS get the same status from Patroni, and so share one cached answer with GET.
        context.Request.Method = HttpMethods.Get;
        context.Request.Path = call.Path;
        context.Request.QueryString = call.Query;
        using var body = new MemoryStream();
        context.Response.Body = body;

        ForwarderError error;
        try
        {
            error = await TimeoutFor(backend.TimeoutPeriod).ExecuteAsync(static async (state, token) =>
            {
                var result = await state.Client._forwarder.SendAsync(state.Context, state.Call.Prefix, state.Call.HttpClient,
                    ForwarderRequestConfig.Empty, HttpTransformer.Default, token);
                // YARP reports a cancelled call as an error code; Polly needs the exception to call it a timeout.
                token.ThrowIfCancellationRequested();
                return result;
            }, (Client: this, Call: call, Context: context), cancellationToken);
        }
        catch (TimeoutRejectedException)
        {
            Log.BackendTimeout(_logger, call.Prefix, call.Path, backend.Timeout);
            return Failed(call, key, CheckAnswer.Failure(CheckAnswer.Timeout,
                $"Patroni at {call.Prefix} did not answer within {backend.Timeout:0.###} s"));
        }

        if (error != ForwarderError.None)
        {
            var reason = context.Features.Get<IForwarderErrorFeature>()?.Exception?.Message ?? error.ToString();
            Log.BackendFailed(_logger, call.Prefix, call.Path, error, reason);
            return Failed(call, key, CheckAnswer.Failure(CheckAnswer.Error, $"Patroni at {call.Prefix} failed: {reason}"));
        }

        var answer = new CheckAnswer(context.Response.StatusCode, context.Response.ContentType, body.ToArray(), null);
        if (call.Options.Cache.StaleIfError > 0)
        {
            _lastGood[key] = new LastGood(answer, _time.GetUtcNow());
        }
        return answer;
    }

    /// <summary>The failure itself, or with stale_if_error on, the last good answer if it is recent enough.</summary>
    private CheckAnswer Failed(BackendCall call, string key, CheckAnswer failure)
    {
        if (call.Options.Cache.StaleIfError > 0
            && _lastGood.TryGetValue(key, out var last)
            && _time.GetUtcNow() - last.At <= call.Options.Cache.StaleIfErrorPeriod)
        {
            return last.Answer with { BackendState = CheckAnswer.Stale };
        }
        return failure;
    }

    /// <summary>One options instance per ttl: a cache hit allocates none (it was a tenth of a hit's allocations).</summary>
    private HybridCacheEntryOptions EntryOptionsFor(CacheOptions cache)
    {
        if (cache.Ttl <= 0)
        {
            return NoStore;
        }
        var current = _entryOptions;
        if (current?.Ttl != cache.TtlPeriod)
        {
            // Rebuilt only when a reload changes the ttl.
            var entry = new HybridCacheEntryOptions { Expiration = cache.TtlPeriod, LocalCacheExpiration = cache.TtlPeriod };
            _entryOptions = current = new TtlEntryOptions(cache.TtlPeriod, entry);
        }
        return current.Entry;
    }

    private ResiliencePipeline TimeoutFor(TimeSpan timeout)
    {
        var current = _timeout;
        if (current?.Timeout != timeout)
        {
            // Rebuilt only when a reload changes the timeout.
            var pipeline = new ResiliencePipelineBuilder { TimeProvider = _time }.AddTimeout(timeout).Build();
            _timeout = current = new TimeoutPipeline(timeout, pipeline);
        }
        return current.Pipeline;
    }

    private sealed record TimeoutPipeline(TimeSpan Timeout, ResiliencePipeline Pipeline);

    private sealed record TtlEntryOptions(TimeSpan Ttl, HybridCacheEntryOptions Entry);

    private sealed record LastGood(CheckAnswer Answer, DateTimeOffset At);

    /// <summary>A struct: HybridCache keeps the state only on a miss, so a hit allocates no call.</summary>
    private readonly record struct BackendCall(
        SidecarCheckClient Client,
        string Prefix,
        HttpMessageInvoker HttpClient,
        PathString Path,
        QueryString Query,
        ProxyOptions Options)
    {
        /// <summary>The backend is part of the key: after a reload to another backend, no answer of the old one is served.</summary>
        public string Key => string.Concat(Prefix, Path.Value, Query.Value);
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Patroni at {Backend} did not answer {Path} within {Timeout} s; the check answers 503.")]
        public static partial void BackendTimeout(ILogger logger, string backend, string path, double timeout);

        [LoggerMessage(2, LogLevel.Warning, "Patroni at {Backend} failed on {Path} ({Error}: {Reason}); the check answers 503.")]
        public static partial void BackendFailed(ILogger logger, string backend, string path, ForwarderError error, string reason);
    }
}
