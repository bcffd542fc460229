using System.Collections.Immutable;
using System.Diagnostics.CodeAnalysis;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using PatroniYarp.Configuration;
using PatroniYarp.Diagnostics;
using Polly;
using Polly.Retry;
using Polly.Timeout;

namespace PatroniYarp.Patroni;

/// <summary>The outcome of asking a cluster's Patroni hosts for /cluster once.</summary>
/// <param name="Source">The host that answered; null when every host failed.</param>
/// <param name="Answer">The parsed answer; null when every host failed.</param>
/// <param name="Error">Why every host failed, host by host; null on success.</param>
internal sealed record PatroniPollResult(string? Source, ClusterParseResult? Answer, string? Error)
{
    [MemberNotNullWhen(true, nameof(Source), nameof(Answer))]
    [MemberNotNullWhen(false, nameof(Error))]
    public bool IsSuccess => Answer is not null;
}

/// <summary>What a member's own Patroni API said when asked whether it is a running primary.</summary>
/// <param name="Detail">What it answered (or why it did not), for the log.</param>
internal sealed record PrimaryConfirmation(bool Confirmed, string Detail);

/// <summary>
/// Talks to one cluster's Patroni REST API. One HttpClient per cluster; hosts are tried one after the other by a
/// Polly pipeline (a retry whose attempt number picks the host, around a per-attempt timeout), so a dead or frozen
/// host costs at most one api_timeout per poll. The host that answered last is tried first next time and failing
/// hosts move to the back. Immutable in its configuration: when hosts, TLS or the timeout change, a new client
/// replaces this one and this one is <see cref="Retire"/>d.
/// </summary>
internal sealed partial class PatroniApiClient : IDisposable
{
    private static readonly ResiliencePropertyKey<int> HostIndexKey = new("PatroniYarp.HostIndex");

    /// <summary>A member's /primary answer is a few hundred bytes.</summary>
    internal const int MaxPrimaryAnswerBytes = 64 * 1024;

    private readonly string _cluster;
    private readonly HttpClient _http;
    private readonly ResiliencePipeline<HostAnswer> _pipeline;
    private readonly ResiliencePipeline _confirmPipeline;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly int _maxBodyBytes;
    private readonly ProxyMetrics? _metrics;
    private readonly Lock _gate = new();
    private ImmutableArray<string> _order;
    // The failure last logged per host: a host that keeps failing the same way is logged once, not on every poll.
    private readonly Dictionary<string, string> _loggedFailures = new(StringComparer.Ordinal);
    private int _inFlight;
    private bool _retired;

    /// <exception cref="System.Security.Cryptography.CryptographicException">A TLS file cannot be loaded.</exception>
    /// <exception cref="IOException">A TLS file cannot be read.</exception>
    public PatroniApiClient(
        string cluster,
        ClusterOptions options,
        TimeSpan apiTimeout,
        TimeProvider time,
        ILogger<PatroniApiClient> logger,
        int maxBodyBytes = ClusterJsonParser.DefaultMaxBytes,
        ProxyMetrics? metrics = null)
    {
        if (options.Hosts.Count == 0)
        {
            throw new ArgumentException($"cluster '{cluster}' has no hosts", nameof(options));
        }
        _cluster = cluster;
        Hosts = options.Hosts;
        Tls = options.Tls;
        ApiTimeout = apiTimeout;
        _time = time;
        _logger = logger;
        _maxBodyBytes = maxBodyBytes;
        _metrics = metrics;
        _order = [.. options.Hosts];
        _http = CreateHttpClient(options.Tls, apiTimeout);
        _pipeline = CreatePipeline(options.Hosts.Count, apiTimeout, time);
        _confirmPipeline = new ResiliencePipelineBuilder { TimeProvider = time }.AddTimeout(apiTimeout).Build();
    }

    public IReadOnlyList<string> Hosts { get; }

    public TlsOptions? Tls { get; }

    public TimeSpan ApiTimeout { get; }

    /// <summary>The order the next poll tries the hosts in.</summary>
    public ImmutableArray<string> HostOrder
    {
        get
        {
            lock (_gate)
            {
                return _order;
            }
        }
    }

    /// <summary>True when this client was built for exactly these settings (so it can stay across a reload).</summary>
    public bool Matches(ClusterOptions options, TimeSpan apiTimeout) =>
        Hosts.SequenceEqual(options.Hosts, StringComparer.Ordinal) && Tls == options.Tls && ApiTimeout == apiTimeout;

    /// <summary>Asks the hosts in turn until one gives a valid answer. Bad answers and failures never throw.</summary>
    /// <exception cref="OperationCanceledException">Only when <paramref name="cancellationToken"/> fires.</exception>
    public async Task<PatroniPollResult> GetClusterAsync(CancellationToken cancellationToken)
    {
        if (!TryEnter())
        {
            return new PatroniPollResult(null, null, ReplacedError);
        }
        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        try
        {
            var state = new PollState(HostOrder, cancellationToken);
            var outcome = await _pipeline.ExecuteOutcomeAsync(
                static (context, state) => state.Client.AttemptAsync(context, state.Poll), context, (Client: this, Poll: state))
                .ConfigureAwait(false);
            outcome.ThrowIfException();
            var answer = outcome.Result!;
            return answer.Answer is { IsSuccess: true }
                ? new PatroniPollResult(answer.Host, answer.Answer, null)
                : new PatroniPollResult(null, null, $"every host failed: {string.Join("; ", state.Failures)}");
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
            Exit();
        }
    }

    /// <summary>
    /// Asks a member's own Patroni API (<c>GET {api_url's scheme://host:port}/primary</c>, within api_timeout) whether it
    /// is a running primary. Confirmed only when the answer is 200 (it holds the leader lock) and its body says role
    /// master/primary (Patroni computes it with pg_is_in_recovery() on each request) and state running: Patroni 3.0.x
    /// answers 200 as soon as it holds the lock, while its PostgreSQL may still be in recovery for ~100 ms.
    /// Failures never throw.
    /// </summary>
    /// <exception cref="OperationCanceledException">Only when <paramref name="cancellationToken"/> fires.</exception>
    public async Task<PrimaryConfirmation> ConfirmPrimaryAsync(string? apiUrl, CancellationToken cancellationToken)
    {
        if (!Uri.TryCreate(apiUrl, UriKind.Absolute, out var api) || api.Scheme is not ("http" or "https"))
        {
            return new PrimaryConfirmation(false, $"its api_url '{apiUrl}' is not an http(s) URL");
        }
        if (!TryEnter())
        {
            return new PrimaryConfirmation(false, ReplacedError);
        }
        var uri = new Uri($"{api.GetLeftPart(UriPartial.Authority)}/primary");
        try
        {
            return await _confirmPipeline.ExecuteAsync(
                static (state, token) => new ValueTask<PrimaryConfirmation>(state.Client.FetchPrimaryAsync(state.Uri, token)),
                (Client: this, Uri: uri), cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutRejectedException)
        {
            return new PrimaryConfirmation(false, $"{uri}: no answer within {ApiTimeout.TotalSeconds:0.###} s");
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or ObjectDisposedException)
        {
            return new PrimaryConfirmation(false, $"{uri}: {ex.Message}");
        }
        finally
        {
            Exit();
        }
    }

    private const string ReplacedError = "the client was replaced by a configuration change";

    /// <summary>Counts a call in; false when the client is retired (its HttpClient is disposed once the last call ends).</summary>
    private bool TryEnter()
    {
        lock (_gate)
        {
            if (_retired && _inFlight == 0)
            {
                return false;
            }
            _inFlight++;
            return true;
        }
    }

    private void Exit()
    {
        bool dispose;
        lock (_gate)
        {
            dispose = --_inFlight == 0 && _retired;
        }
        if (dispose)
        {
            _http.Dispose();
        }
    }

    private async Task<PrimaryConfirmation> FetchPrimaryAsync(Uri uri, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, uri);
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken)
            .ConfigureAwait(false);
        var status = (int)response.StatusCode;
        var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        var (role, state) = await ClusterJsonParser.ReadBoundedAsync(body, MaxPrimaryAnswerBytes, static (json, _) => ReadRoleAndState(json),
            (Role: "(answer too large)", State: (string?)null), cancellationToken).ConfigureAwait(false);
        var confirmed = status == 200 && role is "master" or "primary" && state == "running";
        return new PrimaryConfirmation(confirmed, $"{uri}: HTTP {status}, role {role ?? "(none)"}, state {state ?? "(none)"}");
    }

    private static (string? Role, string? State) ReadRoleAndState(ReadOnlyMemory<byte> json)
    {
        try
        {
            using var document = JsonDocument.Parse(json);
            return document.RootElement.ValueKind == JsonValueKind.Object
                ? (Text(document.RootElement, "role"), Text(document.RootElement, "state"))
                : (null, null);
        }
        catch (JsonException)
        {
            return ("(not JSON)", null);
        }

        static string? Text(JsonElement root, string name) =>
            root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
    }

    /// <summary>Stops taking polls; disposes the HttpClient once the polls still running have finished.</summary>
    public void Retire()
    {
        lock (_gate)
        {
            _retired = true;
            if (_inFlight > 0)
            {
                return;
            }
        }
        _http.Dispose();
    }

    public void Dispose() => Retire();

    private async ValueTask<Outcome<HostAnswer>> AttemptAsync(ResilienceContext context, PollState state)
    {
        var host = state.Order[context.Properties.GetValue(HostIndexKey, 0)];
        var started = _time.GetTimestamp();
        string reason;
        try
        {
            var answer = await FetchAsync(host, context.CancellationToken).ConfigureAwait(false);
            if (answer.Answer is { IsSuccess: true })
            {
                _metrics?.PatroniPolled(_cluster, host, _time.GetElapsedTime(started), succeeded: true);
                Reorder(host, answered: true);
                return Outcome.FromResult(answer);
            }
            if (answer.Answer is { Error: { } rejected })
            {
                // A broken answer is a failure of this host: the next one may answer well.
                reason = $"answer rejected: {rejected}";
                if (IsNewFailure(host, reason))
                {
                    Log.AnswerRejected(_logger, _cluster, host, rejected);
                }
                else
                {
                    Log.FailedAgain(_logger, _cluster, host, reason);
                }
                _metrics?.PatroniPolled(_cluster, host, _time.GetElapsedTime(started), succeeded: false);
                return Failed(host, reason, state);
            }
            reason = answer.Failure!;
        }
        catch (OperationCanceledException) when (!state.Cancellation.IsCancellationRequested)
        {
            // The per-attempt timeout fired (the poll itself was not cancelled).
            reason = $"no answer within {ApiTimeout.TotalSeconds:0.###} s";
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or ObjectDisposedException)
        {
            reason = ex.InnerException is { } inner ? $"{ex.Message} ({inner.Message})" : ex.Message;
        }
        if (IsNewFailure(host, reason))
        {
            Log.HostFailed(_logger, _cluster, host, reason, _time.GetElapsedTime(started).TotalMilliseconds);
        }
        else
        {
            Log.FailedAgain(_logger, _cluster, host, reason);
        }
        _metrics?.PatroniPolled(_cluster, host, _time.GetElapsedTime(started), succeeded: false);
        return Failed(host, reason, state);
    }

    /// <summary>True when <paramref name="host"/> did not fail for this very reason last time (then it is worth a warning).</summary>
    private bool IsNewFailure(string host, string reason)
    {
        lock (_gate)
        {
            if (_loggedFailures.TryGetValue(host, out var last) && last == reason)
            {
                return false;
            }
            _loggedFailures[host] = reason;
            return true;
        }
    }

    private Outcome<HostAnswer> Failed(string host, string reason, PollState state)
    {
        Reorder(host, answered: false);
        state.Failures.Add($"{host}: {reason}");
        return Outcome.FromResult(new HostAnswer(host, null, reason));
    }
    private async Task<HostAnswer> FetchAsync(string host, CancellationToken cancellationToken)
    {
        if (!Uri.TryCreate($"{host.TrimEnd('/')}/cluster", UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
        {
            return new HostAnswer(host, null, "not an http(s) URL");
        }
        using var request = new HttpRequestMessage(HttpMethod.Get, uri);
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken)
            .ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            return new HostAnswer(host, null, $"HTTP {(int)response.StatusCode} {response.ReasonPhrase}");
        }
        var parsed = response.Content.Headers.ContentLength > _maxBodyBytes
            ? ClusterJsonParser.TooLarge(_maxBodyBytes)
            : await ClusterJsonParser.ReadAsync(
                await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false), _maxBodyBytes, cancellationToken)
                .ConfigureAwait(false);
        return new HostAnswer(host, parsed, null);
    }

    private void Reorder(string host, bool answered)
    {
        lock (_gate)
        {
            if (answered)
            {
                _loggedFailures.Remove(host);
            }
            var rest = _order.Remove(host);
            _order = answered ? rest.Insert(0, host) : rest.Add(host);
        }
    }

    private static HttpClient CreateHttpClient(TlsOptions? tls, TimeSpan apiTimeout)
    {
        var handler = new SocketsHttpHandler
        {
            // Patroni hosts are addressed by name in some deployments: re-resolve now and then.
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            ConnectTimeout = apiTimeout,
            UseProxy = false,
            UseCookies = false,
            AllowAutoRedirect = false,
            SslOptions = CreateSslOptions(tls),
        };
        var client = new HttpClient(handler, disposeHandler: true)
        {
            // The pipeline's per-attempt timeout bounds each call.
            Timeout = Timeout.InfiniteTimeSpan,
        };
        client.DefaultRequestHeaders.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        return client;
    }

    private static SslClientAuthenticationOptions CreateSslOptions(TlsOptions? tls)
    {
        var ssl = new SslClientAuthenticationOptions();
        if (tls is null)
        {
            return ssl;
        }
        if (tls.SkipVerify)
        {
            ssl.RemoteCertificateValidationCallback = static (_, _, _, _) => true;
        }
        else if (!string.IsNullOrEmpty(tls.CaCert))
        {
            var roots = new X509Certificate2Collection();
            roots.ImportFromPemFile(tls.CaCert);
            var policy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                // A private CA for Patroni rarely publishes revocation lists.
                RevocationMode = X509RevocationMode.NoCheck,
            };
            policy.CustomTrustStore.AddRange(roots);
            ssl.CertificateChainPolicy = policy;
        }
        if (!string.IsNullOrEmpty(tls.ClientCert))
        {
            var certificate = X509Certificate2.CreateFromPemFile(tls.ClientCert, string.IsNullOrEmpty(tls.ClientKey) ? null : tls.ClientKey);
            // A context is sent whatever issuers the server asks for; a plain certificate list may be filtered out.
            ssl.ClientCertificateContext = SslStreamCertificateContext.Create(certificate, additionalCertificates: null, offline: true);
        }
        return ssl;
    }

    private static ResiliencePipeline<HostAnswer> CreatePipeline(int hosts, TimeSpan apiTimeout, TimeProvider time)
    {
        var builder = new ResiliencePipelineBuilder<HostAnswer> { TimeProvider = time };
        if (hosts > 1)
        {
            builder.AddRetry(new RetryStrategyOptions<HostAnswer>
            {
                ShouldHandle = static args => ValueTask.FromResult(args.Outcome.Result is { Answer: null }),
                MaxRetryAttempts = hosts - 1,
                Delay = TimeSpan.Zero,
                BackoffType = DelayBackoffType.Constant,
                OnRetry = static args =>
                {
                    // Attempt n (zero-based) failed: the next attempt asks the next host in this poll's order.
                    args.Context.Properties.Set(HostIndexKey, args.AttemptNumber + 1);
                    return default;
                },
            });
        }
        return builder.AddTimeout(apiTimeout).Build();
    }

    /// <summary>One host's answer (which may be a rejected one) or why it gave none.</summary>
    private sealed record HostAnswer(string Host, ClusterParseResult? Answer, string? Failure);

    /// <summary>Per poll: the host order taken at its start, the caller's token, and what failed so far.</summary>
    private sealed record PollState(ImmutableArray<string> Order, CancellationToken Cancellation)
    {
        public List<string> Failures { get; } = [];
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1, Level = LogLevel.Warning,
            Message = "Cluster '{Cluster}': Patroni host {Host} failed after {ElapsedMs:0} ms: {Reason}")]
        public static partial void HostFailed(ILogger logger, string cluster, string host, string reason, double elapsedMs);

        [LoggerMessage(EventId = 2, Level = LogLevel.Warning,
            Message = "Cluster '{Cluster}': rejected the /cluster answer of {Host}, keeping the last good state: {Reason}")]
        public static partial void AnswerRejected(ILogger logger, string cluster, string host, string reason);

        [LoggerMessage(EventId = 3, Level = LogLevel.Debug,
            Message = "Cluster '{Cluster}': Patroni host {Host} failed again: {Reason}")]
        public static partial void FailedAgain(ILogger logger, string cluster, string host, string reason);
    }
}
