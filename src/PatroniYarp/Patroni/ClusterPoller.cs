using System.Security.Cryptography;
using Microsoft.Extensions.Options;
using PatroniYarp.Configuration;
using PatroniYarp.Diagnostics;

namespace PatroniYarp.Patroni;

/// <summary>
/// Keeps <see cref="ClusterStateStore"/> current: one loop per configured cluster polls Patroni's /cluster every
/// cluster_update_interval, and faster (<see cref="FastInterval"/>) while the cluster is unstable — no single leader,
/// the leader just changed, or a poll was requested — until <see cref="CalmPollsToLeaveFastMode"/> polls in a row
/// see the same confirmed leader (and, after a request, for at least <see cref="RequestedFastPeriod"/>). A leader that
/// /cluster names anew is confirmed with its own API (<see cref="PatroniApiClient.ConfirmPrimaryAsync"/>) beside the
/// polls — a frozen member API never delays them — before leader ports use it (<see cref="ClusterSnapshot.LeaderConfirmed"/>);
/// each fast poll asks again until it is. Follows configuration reloads: clusters are added and removed, clients rebuilt when hosts,
/// TLS or api_timeout change. Every poll takes a sequence number when it starts, so a slower older poll never
/// replaces a newer one in the store.
/// </summary>
internal sealed partial class ClusterPoller : IHostedService, IClusterRefresher, IDisposable
{
    /// <summary>Poll interval while a cluster is unstable: learns a new leader within a fraction of a second.</summary>
    internal static readonly TimeSpan FastInterval = TimeSpan.FromMilliseconds(150);

    /// <summary>Polls in a row with the same single leader after which a cluster is polled at the normal interval again.</summary>
    internal const int CalmPollsToLeaveFastMode = 3;

    /// <summary>
    /// A cluster that stays leaderless (or whose API stays down) is polled fast no longer than this, so Patroni is not
    /// hammered; Patroni's own leader election takes up to its ttl (30 s by default). A new event starts it again.
    /// </summary>
    internal static readonly TimeSpan FastModeLimit = TimeSpan.FromSeconds(30);

    /// <summary>
    /// A requested poll keeps the cluster polled fast at least this long, even when the leader it sees looks calm: a
    /// leader that refuses connections stays in /cluster until its shutdown ends and it releases the leader key, and
    /// the held sessions waiting for its successor ask again before this runs out.
    /// </summary>
    internal static readonly TimeSpan RequestedFastPeriod = TimeSpan.FromSeconds(2);

    /// <summary>How long a poll waits for the confirmation of a new leader before it goes on (the check goes on beside).</summary>
    internal static readonly TimeSpan ConfirmationWait = TimeSpan.FromMilliseconds(100);

    private readonly ClusterStateStore _store;
    private readonly IOptionsMonitor<ProxyOptions> _options;
    private readonly TimeProvider _time;
    private readonly ILogger<ClusterPoller> _logger;
    private readonly ILogger<PatroniApiClient> _clientLogger;
    private readonly ProxyMetrics? _metrics;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, ClusterLoop> _loops = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();
    private IDisposable? _changeRegistration;
    private long _sequence;

    public ClusterPoller(
        ClusterStateStore store,
        IOptionsMonitor<ProxyOptions> options,
        TimeProvider time,
        ILogger<ClusterPoller> logger,
        ILogger<PatroniApiClient> clientLogger,
        ProxyMetrics? metrics = null)
    {
        _store = store;
        _options = options;
        _time = time;
        _logger = logger;
        _clientLogger = clientLogger;
        _metrics = metrics;
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _changeRegistration = _options.OnChange(Apply);
        Apply(_options.CurrentValue);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => StopLoopsAsync().WaitAsync(cancellationToken);

    public void Dispose()
    {
        _ = StopLoopsAsync();
        _stopping.Dispose();
    }

    public void RequestPoll(string cluster)
    {
        lock (_gate)
        {
            _loops.GetValueOrDefault(cluster)?.RequestPoll();
        }
    }

    public async Task<ClusterRefreshResult> RefreshAllAsync(CancellationToken cancellationToken)
    {
        ClusterLoop[] loops;
        lock (_gate)
        {
            loops = [.. _loops.Values];
        }
        var errors = await Task.WhenAll(loops.Select(loop => loop.PollAsync(requested: true, cancellationToken))).ConfigureAwait(false);
        var updated = new List<string>();
        var failed = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < loops.Length; i++)
        {
            if (errors[i] is { } error)
            {
                failed[loops[i].Name] = error;
            }
            else
            {
                updated.Add(loops[i].Name);
            }
        }
        return new ClusterRefreshResult(updated, failed);
    }

    private void Apply(ProxyOptions options)
    {
        lock (_gate)
        {
            if (_stopping.IsCancellationRequested)
            {
                return;
            }
            foreach (var name in _loops.Keys.Where(name => !options.Clusters.ContainsKey(name)).ToList())
            {
                _ = _loops[name].StopAsync();
                _loops.Remove(name);
            }
            _store.SetClusters(options.Clusters.Keys);
            foreach (var (name, cluster) in options.Clusters)
            {
                if (_loops.TryGetValue(name, out var loop))
                {
                    loop.Configure(cluster, options);
                }
                else
                {
                    loop = new ClusterLoop(this, name);
                    loop.Configure(cluster, options);
                    _loops.Add(name, loop);
                    loop.Start(_stopping.Token);
                }
            }
        }
    }

    private Task StopLoopsAsync()
    {
        ClusterLoop[] loops;
        lock (_gate)
        {
            if (!_stopping.IsCancellationRequested)
            {
                _changeRegistration?.Dispose();
                _stopping.Cancel();
            }
            loops = [.. _loops.Values];
            _loops.Clear();
        }
        return Task.WhenAll(loops.Select(loop => loop.StopAsync()));
    }

    /// <summary>The name of the one member leading the cluster (leader, or standby_leader in a standby cluster), else null.</summary>
    private static string? LeaderName(ClusterSnapshot? snapshot)
    {
        string? leader = null;
        foreach (var member in snapshot?.Members ?? [])
        {
            if (member.Role is MemberRole.Leader or MemberRole.StandbyLeader)
            {
                if (leader is not null)
                {
                    return null;
                }
                leader = member.Name;
            }
        }
        return leader;
    }

    /// <summary>What a loop polls with; replaced whole on a configuration change.</summary>
    private sealed record LoopSettings(TimeSpan Period, PatroniApiClient? Client, string? ClientError);

    /// <summary>One cluster's poll loop and its fast-mode state.</summary>
    private sealed class ClusterLoop(ClusterPoller owner, string name)
    {
        private readonly CancellationTokenSource _cancellation = new();
        private readonly Lock _modeGate = new();
        private LoopSettings _settings = new(TimeSpan.Zero, null, "not configured");
        private TaskCompletionSource _wake = NewWake();
        private int _pollRequested;
        private int _calmPollsLeft;
        private DateTimeOffset _fastSince;
        private DateTimeOffset _requestedUntil;
        private Task _run = Task.CompletedTask;
        private CancellationToken _running;
        private (string Member, long Since, Task Task)? _confirming;
        private (string Member, long Since)? _warnedUnconfirmable;

        public string Name => name;

        public void Start(CancellationToken stopping)
        {
            _running = CancellationTokenSource.CreateLinkedTokenSource(stopping, _cancellation.Token).Token;
            _run = Task.Run(() => RunAsync(_running), CancellationToken.None);
        }

        public async Task StopAsync()
        {
            await _cancellation.CancelAsync().ConfigureAwait(false);
            try
            {
                await _run.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
            Volatile.Read(ref _settings).Client?.Retire();
        }

        /// <summary>Applies (re)loaded settings; a change that matters wakes the loop so it takes effect now.</summary>
        public void Configure(ClusterOptions cluster, ProxyOptions options)
        {
            var current = Volatile.Read(ref _settings);
            LoopSettings next;
            if (current.Client is { } client && client.Matches(cluster, options.ApiTimeoutPeriod))
            {
                if (current.Period == options.ClusterUpdatePeriod)
                {
                    return;
                }
                next = current with { Period = options.ClusterUpdatePeriod };
            }
            else
            {
                next = CreateSettings(cluster, options);
                current.Client?.Retire();
            }
            Volatile.Write(ref _settings, next);
            Volatile.Read(ref _wake).TrySetResult();
        }

        public void RequestPoll()
        {
            Volatile.Write(ref _pollRequested, 1);
            Volatile.Read(ref _wake).TrySetResult();
        }

        /// <summary>Polls once; null on success, otherwise why every host failed.</summary>
        public async Task<string?> PollAsync(bool requested, CancellationToken cancellationToken)
        {
            var settings = Volatile.Read(ref _settings);
            // Taken at the start: the store orders snapshots by when their poll began, not when it ended.
            var sequence = Interlocked.Increment(ref owner._sequence);
            var result = settings.Client is null
                ? new PatroniPollResult(null, null, settings.ClientError)
                : await settings.Client.GetClusterAsync(cancellationToken).ConfigureAwait(false);
            var now = owner._time.GetUtcNow();

            if (!result.IsSuccess)
            {
                var before = owner._store.Clusters.GetValueOrDefault(Name);
                owner._store.ReportFailure(Name, sequence, result.Error, now);
                if (before is { LastError: null })
                {
                    // Once per outage (a host's failure is logged when it starts or changes): fast polls must not flood the log.
                    Log.ClusterStale(owner._logger, Name, before.LastGoodPoll?.ToString("O") ?? "never", result.Error);
                }
                UpdateMode(requested, leaderChanged: false, stable: false, now);
                return result.Error;
            }

            var previous = owner._store.Clusters.GetValueOrDefault(Name);
            var snapshot = new ClusterSnapshot(sequence, result.Answer.Members, now, result.Source, result.Answer.Paused);
            if (!owner._store.TryApply(Name, snapshot))
            {
                // A poll that started later already stored a newer answer; this one says nothing new.
                UpdateMode(requested, leaderChanged: false, stable: true, now);
                return null;
            }
            var oldLeader = LeaderName(previous?.Snapshot);
            var newLeader = LeaderName(snapshot);
            if (previous?.Snapshot is not null && oldLeader != newLeader)
            {
                Log.LeaderChanged(owner._logger, Name, oldLeader ?? "(none)", newLeader ?? "(none)");
                owner._metrics?.LeaderChanged(Name);
            }
            if (previous is { IsStale: true, LastError: not null })
            {
                Log.ClusterRecovered(owner._logger, Name, result.Source);
            }
            var confirmed = await ConfirmLeaderAsync(settings).ConfigureAwait(false);
            // The first answer counts as a change only when its leader is still to be learnt or confirmed.
            var leaderChanged = previous?.Snapshot is null ? newLeader is null || !confirmed : oldLeader != newLeader;
            // Unconfirmed, the leader ports hold their sessions: stay fast until it is confirmed.
            UpdateMode(requested, leaderChanged, stable: newLeader is not null && confirmed, now);
            return null;
        }

        /// <summary>
        /// True when the stored snapshot has no leader or a confirmed one. Otherwise asks the leader's own API (unless
        /// that is already being asked) and waits for the answer at most <see cref="ConfirmationWait"/>: the answer
        /// usually comes in a few milliseconds, and a frozen member API must not hold up the polls of /cluster.
        /// </summary>
        private async Task<bool> ConfirmLeaderAsync(LoopSettings settings)
        {
            var stored = owner._store.Clusters.GetValueOrDefault(Name)?.Snapshot;
            if (stored is { LeaderConfirmed: true } || stored?.Leader is not { } leader || settings.Client is not { } client)
            {
                return stored?.Leader is null || stored.LeaderConfirmed;
            }
            Task confirmation;
            lock (_modeGate)
            {
                if (_confirming is not { } running || running.Member != leader.Name || running.Since != stored.LeaderSince)
                {
                    _confirming = (leader.Name, stored.LeaderSince, ConfirmAsync(client, leader, stored.LeaderSince));
                }
                confirmation = _confirming.Value.Task;
            }
            try
            {
                await confirmation.WaitAsync(ConfirmationWait, owner._time).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // Still running: it confirms the store when it answers.
            }
            return owner._store.Clusters.GetValueOrDefault(Name)?.Snapshot is { LeaderConfirmed: true };
        }

        private async Task ConfirmAsync(PatroniApiClient client, PatroniMember leader, long since)
        {
            try
            {
                var started = owner._time.GetTimestamp();
                var answer = await client.ConfirmPrimaryAsync(leader.ApiUrl, _running).ConfigureAwait(false);
                if (!answer.Confirmed)
                {
                    // Normal for ~100 ms while a new leader is promoted; a member whose API cannot be used is said once.
                    if (leader.ApiUrl is null || !Uri.TryCreate(leader.ApiUrl, UriKind.Absolute, out _))
                    {
                        lock (_modeGate)
                        {
                            if (_warnedUnconfirmable == (leader.Name, since))
                            {
                                return;
                            }
                            _warnedUnconfirmable = (leader.Name, since);
                        }
                        Log.LeaderUnconfirmable(owner._logger, Name, leader.Name, answer.Detail);
                    }
                    else
                    {
                        Log.LeaderNotConfirmed(owner._logger, Name, leader.Name, answer.Detail);
                    }
                }
                else if (owner._store.ConfirmLeader(Name, leader.Name, since))
                {
                    Log.LeaderConfirmed(owner._logger, Name, leader.Name, owner._time.GetElapsedTime(started).TotalMilliseconds, answer.Detail);
                }
            }
            catch (OperationCanceledException) when (_running.IsCancellationRequested)
            {
            }
            catch (Exception ex)
            {
                Log.PollCrashed(owner._logger, Name, ex);
            }
            finally
            {
                // Yield first: when the answer came at once, the caller must have stored this task before it is cleared.
                await Task.Yield();
                lock (_modeGate)
                {
                    if (_confirming is { } running && running.Member == leader.Name && running.Since == since)
                    {
                        _confirming = null;
                    }
                }
            }
        }

        private async Task RunAsync(CancellationToken cancellationToken)
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                // Taken before the poll, so a request or reload that arrives while it runs causes one more poll.
                var wake = NewWake();
                Volatile.Write(ref _wake, wake);
                var requested = Interlocked.Exchange(ref _pollRequested, 0) == 1;
                var started = owner._time.GetTimestamp();
                try
                {
                    await PollAsync(requested, cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception ex)
                {
                    // Never let one bad poll end the loop: the cluster would silently stop being followed.
                    Log.PollCrashed(owner._logger, Name, ex);
                }

                using var delayCancellation = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                var delay = Task.Delay(NextDelay(), owner._time, delayCancellation.Token);
                var woken = await Task.WhenAny(delay, wake.Task).ConfigureAwait(false) == wake.Task;
                await delayCancellation.CancelAsync().ConfigureAwait(false);

                // Requests keep coming while sessions wait for a leader: they must not turn into back-to-back polls
                // (a reload is applied at once).
                var sinceStart = owner._time.GetElapsedTime(started);
                if (woken && Volatile.Read(ref _pollRequested) == 1 && sinceStart < FastInterval)
                {
                    await Task.Delay(FastInterval - sinceStart, owner._time, cancellationToken).ConfigureAwait(false);
                }
            }
        }

        private TimeSpan NextDelay()
        {
            var period = Volatile.Read(ref _settings).Period;
            var now = owner._time.GetUtcNow();
            lock (_modeGate)
            {
                return (_calmPollsLeft > 0 || now < _requestedUntil) && FastInterval < period ? FastInterval : period;
            }
        }

        private void UpdateMode(bool requested, bool leaderChanged, bool stable, DateTimeOffset now)
        {
            lock (_modeGate)
            {
                if (requested)
                {
                    _requestedUntil = now + RequestedFastPeriod;
                }
                if (requested || leaderChanged)
                {
                    _fastSince = now;
                    _calmPollsLeft = CalmPollsToLeaveFastMode;
                }
                else if (_calmPollsLeft > 0)
                {
                    if (stable)
                    {
                        _calmPollsLeft--;
                    }
                    else if (now - _fastSince >= FastModeLimit)
                    {
                        _calmPollsLeft = 0;
                    }
                }
            }
        }

        private LoopSettings CreateSettings(ClusterOptions cluster, ProxyOptions options)
        {
            try
            {
                var client = new PatroniApiClient(Name, cluster, options.ApiTimeoutPeriod, owner._time, owner._clientLogger,
                    metrics: owner._metrics);
                return new LoopSettings(options.ClusterUpdatePeriod, client, null);
            }
            catch (Exception ex) when (ex is CryptographicException or IOException or UnauthorizedAccessException or ArgumentException)
            {
                // Validation should have caught it; if a TLS file went bad since, say so on every poll instead of crashing.
                var error = $"the Patroni API client cannot be built: {ex.Message}";
                Log.ClientUnusable(owner._logger, Name, ex);
                return new LoopSettings(options.ClusterUpdatePeriod, null, error);
            }
        }

        private static TaskCompletionSource NewWake() => new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 10, Level = LogLevel.Warning,
            Message = "Cluster '{Cluster}' is stale (last good poll: {LastGoodPoll}); routing stays on the last known members: {Error}")]
        public static partial void ClusterStale(ILogger logger, string cluster, string lastGoodPoll, string error);

        [LoggerMessage(EventId = 11, Level = LogLevel.Information,
            Message = "Cluster '{Cluster}': leader changed {OldLeader} -> {NewLeader}")]
        public static partial void LeaderChanged(ILogger logger, string cluster, string oldLeader, string newLeader);

        [LoggerMessage(EventId = 12, Level = LogLevel.Information,
            Message = "Cluster '{Cluster}' is fresh again ({Source} answered)")]
        public static partial void ClusterRecovered(ILogger logger, string cluster, string source);

        [LoggerMessage(EventId = 13, Level = LogLevel.Error,
            Message = "Cluster '{Cluster}': the Patroni API client cannot be built; every poll fails until the configuration is fixed")]
        public static partial void ClientUnusable(ILogger logger, string cluster, Exception exception);

        [LoggerMessage(EventId = 14, Level = LogLevel.Error, Message = "Cluster '{Cluster}': a poll failed unexpectedly")]
        public static partial void PollCrashed(ILogger logger, string cluster, Exception exception);

        [LoggerMessage(EventId = 15, Level = LogLevel.Information,
            Message = "Cluster '{Cluster}': leader {Leader} confirmed by its own API in {ElapsedMs:0} ms ({Detail}); leader ports use it")]
        public static partial void LeaderConfirmed(ILogger logger, string cluster, string leader, double elapsedMs, string detail);

        [LoggerMessage(EventId = 16, Level = LogLevel.Debug,
            Message = "Cluster '{Cluster}': leader {Leader} not confirmed yet ({Detail}); leader ports hold their sessions")]
        public static partial void LeaderNotConfirmed(ILogger logger, string cluster, string leader, string detail);

        [LoggerMessage(EventId = 17, Level = LogLevel.Warning,
            Message = "Cluster '{Cluster}': leader {Leader} cannot be confirmed ({Detail}); leader ports get no destination until Patroni reports an api_url")]
        public static partial void LeaderUnconfirmable(ILogger logger, string cluster, string leader, string detail);
    }
}
