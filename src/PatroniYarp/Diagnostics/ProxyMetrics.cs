using System.Diagnostics.Metrics;
using PatroniYarp.Patroni;
using PatroniYarp.Tcp;

namespace PatroniYarp.Diagnostics;

/// <summary>
/// Every PatroniYarp instrument, on one meter. Session and byte counts are observed from <see cref="SessionRegistry"/>
/// and staleness from <see cref="ClusterStateStore"/> at scrape time, so the forwarding path does no metrics work;
/// the rest are recorded by one-line calls where the event happens.
/// </summary>
internal sealed class ProxyMetrics
{
    public const string MeterName = "PatroniYarp";

    /// <summary>Why the proxy closed sessions (the <c>reason</c> tag of <c>patroniyarp.sessions.closed</c>).</summary>
    public static class Reasons
    {
        public const string MemberRemoved = "member_removed";
        public const string RoleChange = "role_change";
        public const string StateChange = "state_change";
        public const string Lag = "lag";
        public const string NoLoadBalance = "noloadbalance";
        public const string Reload = "reload";
        public const string Drain = "drain";
    }

    // Poll and health-check calls take milliseconds to a few seconds; OpenTelemetry's default buckets are for milliseconds.
    private static readonly InstrumentAdvice<double> SecondsAdvice = new()
    {
        HistogramBucketBoundaries = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    };

    // Held sessions wait for a leader: up to tens of seconds.
    private static readonly InstrumentAdvice<double> HoldAdvice = new()
    {
        HistogramBucketBoundaries = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    };

    private readonly Counter<long> _connectFailures;
    private readonly Counter<long> _sessionsClosed;
    private readonly Histogram<double> _pollDuration;
    private readonly Counter<long> _pollFailures;
    private readonly Counter<long> _leaderChanges;
    private readonly Counter<long> _healthCacheHits;
    private readonly Counter<long> _healthCacheMisses;
    private readonly Histogram<double> _healthBackendDuration;
    private readonly UpDownCounter<long> _sessionsHeld;
    private readonly Histogram<double> _holdDuration;

    public ProxyMetrics(IMeterFactory meterFactory, SessionRegistry sessions, ClusterStateStore store, TimeProvider time)
    {
        var meter = meterFactory.Create(MeterName);

        meter.CreateObservableUpDownCounter("patroniyarp.sessions.open",
            () => Observe(sessions, static t => (long)t.Open), "{session}", "TCP sessions open now, per cluster, port and member.");
        meter.CreateObservableCounter("patroniyarp.sessions",
            () => Observe(sessions, static t => t.Opened), "{session}", "TCP sessions opened since start, per cluster, port and member.");
        meter.CreateObservableCounter("patroniyarp.traffic.in",
            () => Observe(sessions, static t => t.BytesIn), "By", "Bytes clients sent to the members (in), per cluster, port and member.");
        meter.CreateObservableCounter("patroniyarp.traffic.out",
            () => Observe(sessions, static t => t.BytesOut), "By", "Bytes the members sent to clients (out), per cluster, port and member.");
        meter.CreateObservableGauge("patroniyarp.cluster.staleness",
            () => ObserveStaleness(store, time), "s", "Seconds since the last good poll of the cluster's Patroni API.");
        meter.CreateObservableGauge("patroniyarp.cluster.stale",
            () => store.Clusters.Values.Select(static c => new Measurement<int>(c.IsStale ? 1 : 0, Tag("cluster", c.Name))),
            null, "1 while every Patroni host of the cluster fails (routing stays on the last known members).");

        _connectFailures = meter.CreateCounter<long>("patroniyarp.connect.failures", "{connect}",
            "Connects to a member that failed or timed out (the next eligible member is tried).");
        _sessionsClosed = meter.CreateCounter<long>("patroniyarp.sessions.closed", "{session}",
            "Sessions the proxy closed, by reason: member_removed, role_change, state_change, lag, noloadbalance, reload, drain.");
        _pollDuration = meter.CreateHistogram("patroniyarp.poll.duration", "s",
            "Duration of one GET /cluster to one Patroni host, by outcome (success, failure).", advice: SecondsAdvice);
        _pollFailures = meter.CreateCounter<long>("patroniyarp.poll.failures", "{poll}",
            "Failed GET /cluster calls per Patroni host (error, timeout or rejected answer).");
        _leaderChanges = meter.CreateCounter<long>("patroniyarp.leader.changes", "{change}",
            "Leader changes seen by the poller.");
        _healthCacheHits = meter.CreateCounter<long>("patroniyarp.health_check.cache.hits", "{request}",
            "Health-check requests answered from the response cache.");
        _healthCacheMisses = meter.CreateCounter<long>("patroniyarp.health_check.cache.misses", "{request}",
            "Health-check requests that went to the member's Patroni API.");
        _healthBackendDuration = meter.CreateHistogram("patroniyarp.health_check.backend.duration", "s",
            "Duration of a health-check call to a member's Patroni API.", advice: SecondsAdvice);
        _sessionsHeld = meter.CreateUpDownCounter<long>("patroniyarp.sessions.held", "{session}",
            "Sessions waiting for an eligible member (e.g. a leader during a switchover).");
        _holdDuration = meter.CreateHistogram("patroniyarp.sessions.hold.duration", "s",
            "How long held sessions waited, by outcome (forwarded, refused).", advice: HoldAdvice);
    }

    public void ConnectFailed(string cluster, string port, string member) =>
        _connectFailures.Add(1, Tag("cluster", cluster), Tag("port", port), Tag("member", member));

    public void SessionsClosed(string cluster, string port, string member, string reason, int count) =>
        _sessionsClosed.Add(count, Tag("cluster", cluster), Tag("port", port), Tag("member", member), Tag("reason", reason));

    /// <summary>Counts <paramref name="sessions"/> (about to be closed) by port and member under one reason.</summary>
    public void SessionsClosed(IEnumerable<TcpSession> sessions, string reason)
    {
        foreach (var group in sessions.GroupBy(static s => (s.Endpoint.ClusterName, s.Endpoint.PortName, s.Member)))
        {
            SessionsClosed(group.Key.ClusterName, group.Key.PortName, group.Key.Member, reason, group.Count());
        }
    }

    public void PatroniPolled(string cluster, string host, TimeSpan duration, bool succeeded)
    {
        _pollDuration.Record(duration.TotalSeconds, Tag("cluster", cluster), Tag("host", host),
            Tag("outcome", succeeded ? "success" : "failure"));
        if (!succeeded)
        {
            _pollFailures.Add(1, Tag("cluster", cluster), Tag("host", host));
        }
    }

    public void LeaderChanged(string cluster) => _leaderChanges.Add(1, Tag("cluster", cluster));

    /// <summary>Seam for the health-check API's response cache: one call per request it answers.</summary>
    public void HealthCheckCacheLookup(string check, bool hit) =>
        (hit ? _healthCacheHits : _healthCacheMisses).Add(1, Tag("check", check));

    /// <summary>Seam for the health-check API: one call per request that reached a member's Patroni API.</summary>
    public void HealthCheckBackendCalled(string member, TimeSpan duration, int statusCode) =>
        _healthBackendDuration.Record(duration.TotalSeconds, Tag("member", member), Tag("status", statusCode));

    /// <summary>Seam for sessions held during a switchover: call when a session starts waiting.</summary>
    public void SessionHeld(string cluster, string port) => _sessionsHeld.Add(1, Tag("cluster", cluster), Tag("port", port));

    /// <summary>Seam for held sessions: call once when the wait ends, forwarded or refused.</summary>
    public void SessionHoldEnded(string cluster, string port, TimeSpan waited, bool forwarded)
    {
        _sessionsHeld.Add(-1, Tag("cluster", cluster), Tag("port", port));
        _holdDuration.Record(waited.TotalSeconds, Tag("cluster", cluster), Tag("port", port),
            Tag("outcome", forwarded ? "forwarded" : "refused"));
    }

    private static IEnumerable<Measurement<long>> Observe(SessionRegistry sessions, Func<SessionTraffic, long> value) =>
        sessions.TrafficTotals().Select(entry => new Measurement<long>(value(entry.Value),
            Tag("cluster", entry.Key.Cluster), Tag("port", entry.Key.Port), Tag("member", entry.Key.Member)));

    private static IEnumerable<Measurement<double>> ObserveStaleness(ClusterStateStore store, TimeProvider time)
    {
        var now = time.GetUtcNow();
        foreach (var cluster in store.Clusters.Values)
        {
            // A cluster never polled successfully has no age to report; patroniyarp.cluster.stale says 1 for it.
            if (cluster.LastGoodPoll is { } lastGood)
            {
                yield return new Measurement<double>(Math.Max(0, (now - lastGood).TotalSeconds), Tag("cluster", cluster.Name));
            }
        }
    }

    private static KeyValuePair<string, object?> Tag(string key, object? value) => new(key, value);
}
