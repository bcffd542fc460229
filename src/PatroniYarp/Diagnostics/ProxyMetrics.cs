using System.Diagnostics.Metrics;
using Microsoft.Extensions.Options;
using PatroniYarp.Configuration;
using PatroniYarp.Patroni;
using PatroniYarp.Routing;
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
    private readonly Counter<long> _healthRequests;
    private readonly Counter<long> _healthCacheMisses;
    private readonly Histogram<double> _healthBackendDuration;
    private readonly Histogram<double> _holdDuration;
    private readonly Counter<long> _acceptPauses;

    public ProxyMetrics(IMeterFactory meterFactory, SessionRegistry sessions, ClusterStateStore store, HeldSessions held,
        DescriptorBudget budget, IOptionsMonitor<ProxyOptions> options, TimeProvider time)
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
        // Hits are requests − misses: a request that joins a call already running is a hit, known only to the cache.
        _healthRequests = meter.CreateCounter<long>("patroniyarp.health_check.requests", "{request}",
            "Sidecar health-check requests, per check path.");
        _healthCacheMisses = meter.CreateCounter<long>("patroniyarp.health_check.cache.misses", "{request}",
            "Sidecar health-check answers not in the cache: calls to Patroni, per check path (hits = requests − misses).");
        _healthBackendDuration = meter.CreateHistogram("patroniyarp.health_check.backend.duration", "s",
            "Duration of a health-check call to Patroni, per check path and outcome (status code, timeout, error, stale).",
            advice: SecondsAdvice);
        meter.CreateObservableUpDownCounter("patroniyarp.sessions.held",
            () => ObserveHeld(held, options.CurrentValue), "{session}",
            "Sessions waiting for an eligible member (e.g. a leader during a switchover), per cluster and port.");
        _holdDuration = meter.CreateHistogram("patroniyarp.sessions.hold.duration", "s",
            "How long held sessions waited, by outcome (forwarded, timed_out, client_gone).", advice: HoldAdvice);
        meter.CreateObservableUpDownCounter("patroniyarp.connections.open", () => budget.Taken, "{connection}",
            "Client connections the TCP ports hold now: sessions, and sessions being started or held.");
        meter.CreateObservableGauge("patroniyarp.connections.limit", () => budget.MaxSessions, "{connection}",
            "The most client connections the TCP ports take at once (two open files each under the open-files limit, with a reserve); more wait in the listen backlog.");
        _acceptPauses = meter.CreateCounter<long>("patroniyarp.accept.pauses", "{pause}",
            "Times a listener stopped accepting for a while, by reason: limit (a TCP port; connections.limit reached), out_of_descriptors (a TCP port), http_limit (the HTTP API's share of the open-files limit reached).");
    }

    /// <summary>Why a listener stopped accepting (the <c>reason</c> tag of <c>patroniyarp.accept.pauses</c>).</summary>
    public static class PauseReasons
    {
        public const string Limit = "limit";
        public const string OutOfDescriptors = "out_of_descriptors";
        public const string HttpLimit = "http_limit";
    }

    public void AcceptPaused(string reason) => _acceptPauses.Add(1, Tag("reason", reason));

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

    /// <summary>A sidecar health-check request, before the cache is asked.</summary>
    public void HealthCheckRequested(string check) => _healthRequests.Add(1, Tag("check", check));

    /// <summary>The cache missed and Patroni was called; <paramref name="outcome"/> is its status code, timeout, error or stale.</summary>
    public void HealthCheckBackendCalled(string check, TimeSpan duration, string outcome)
    {
        _healthCacheMisses.Add(1, Tag("check", check));
        _healthBackendDuration.Record(duration.TotalSeconds, Tag("check", check), Tag("outcome", outcome));
    }

    /// <summary>A held session stopped waiting: <paramref name="outcome"/> is forwarded, timed_out or client_gone.</summary>
    public void SessionHoldEnded(string cluster, string port, TimeSpan waited, string outcome) =>
        _holdDuration.Record(waited.TotalSeconds, Tag("cluster", cluster), Tag("port", port), Tag("outcome", outcome));

    private static IEnumerable<Measurement<long>> Observe(SessionRegistry sessions, Func<SessionTraffic, long> value) =>
        sessions.TrafficTotals().Select(entry => new Measurement<long>(value(entry.Value),
            Tag("cluster", entry.Key.Cluster), Tag("port", entry.Key.Port), Tag("member", entry.Key.Member)));

    private static IEnumerable<Measurement<int>> ObserveHeld(HeldSessions held, ProxyOptions options)
    {
        foreach (var (cluster, clusterOptions) in options.Clusters)
        {
            foreach (var port in clusterOptions.Ports.Keys)
            {
                yield return new Measurement<int>(held.Waiting(ProxyClusterIds.ForPort(cluster, port)), Tag("cluster", cluster), Tag("port", port));
            }
        }
    }

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
