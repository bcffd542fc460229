using System.Collections.Concurrent;
using System.Net;
using Yarp.ReverseProxy;

namespace PatroniYarp.Tcp;

/// <summary>
/// Every open session of this process, and per destination the number of open sessions that the balancer reads.
/// Counters are keyed by YARP cluster id and destination id, not by YARP's state objects, so they outlive reloads.
/// </summary>
internal sealed class SessionRegistry(TimeProvider timeProvider)
{
    public const string ReasonMemberNotEligible = "member no longer eligible for the port";
    public const string ReasonPortRemoved = "port removed from the configuration";

    private readonly ConcurrentDictionary<long, TcpSession> _sessions = new();
    private readonly ConcurrentDictionary<DestinationKey, SessionCounter> _counters = new();
    // Totals of ended sessions; a session moves from _sessions into them under the lock so that TrafficTotals never
    // counts it twice or not at all (the metrics are counters: they must never go down).
    private readonly Lock _endedGate = new();
    private readonly Dictionary<SessionGroup, SessionTraffic> _ended = [];
    private long _lastId;

    /// <summary>The counter of one destination, created on first use and kept for the life of the process.</summary>
    public SessionCounter GetCounter(string clusterId, string destinationId) =>
        _counters.GetOrAdd(new DestinationKey(clusterId, destinationId), static _ => new SessionCounter());

    /// <summary>
    /// Registers a connected session. The destination's counter was already incremented when the balancer reserved it;
    /// <see cref="Unregister"/> gives it back.
    /// </summary>
    public TcpSession Register(TcpPortEndpoint endpoint, string destinationId, string member, EndPoint? client, EndPoint? backend)
    {
        var session = new TcpSession(Interlocked.Increment(ref _lastId), endpoint, destinationId, member, client, backend,
            timeProvider.GetUtcNow());
        _sessions[session.Id] = session;
        return session;
    }

    public void Unregister(TcpSession session)
    {
        lock (_endedGate)
        {
            if (!_sessions.TryRemove(session.Id, out _))
            {
                return;
            }
            var group = new SessionGroup(session.Endpoint.ClusterName, session.Endpoint.PortName, session.Member);
            _ended[group] = _ended.GetValueOrDefault(group).Add(0, session.BytesIn, session.BytesOut);
        }
        GetCounter(session.Endpoint.ClusterId, session.DestinationId).Decrement();
    }

    /// <summary>
    /// Per cluster, port and member since the process started: sessions open now, sessions ever opened, and bytes in
    /// each direction of ended and open sessions. Read by the metrics at scrape time, so forwarding pays nothing for it.
    /// </summary>
    public IReadOnlyDictionary<SessionGroup, SessionTraffic> TrafficTotals()
    {
        lock (_endedGate)
        {
            var totals = new Dictionary<SessionGroup, SessionTraffic>(_ended);
            foreach (var session in _sessions.Values)
            {
                var group = new SessionGroup(session.Endpoint.ClusterName, session.Endpoint.PortName, session.Member);
                totals[group] = totals.GetValueOrDefault(group).Add(1, session.BytesIn, session.BytesOut);
            }
            return totals;
        }
    }

    public int Count => _sessions.Count;

    /// <summary>The open sessions, in no order (for closing or counting a group of them).</summary>
    public IEnumerable<TcpSession> OpenSessions() => _sessions.Values;

    /// <summary>Open sessions, oldest first.</summary>
    public IReadOnlyList<TcpSessionInfo> Snapshot()
    {
        var list = new List<TcpSessionInfo>(_sessions.Count);
        foreach (var session in _sessions.Values)
        {
            list.Add(session.ToInfo());
        }
        list.Sort(static (a, b) => a.Id.CompareTo(b.Id));
        return list;
    }

    /// <summary>Open (or connecting) sessions of one destination of one port.</summary>
    public int GetOpenSessions(string clusterId, string destinationId) =>
        _counters.TryGetValue(new DestinationKey(clusterId, destinationId), out var counter) ? counter.Value : 0;

    /// <summary>Non-zero open-session counts by port (YARP cluster id) and destination id.</summary>
    public IReadOnlyDictionary<DestinationKey, int> OpenSessionCounts()
    {
        var counts = new Dictionary<DestinationKey, int>();
        foreach (var (key, counter) in _counters)
        {
            if (counter.Value > 0)
            {
                counts[key] = counter.Value;
            }
        }
        return counts;
    }

    /// <summary>Closes the sessions accepted by one listener (its port was removed or rebound).</summary>
    public int CloseEndpointSessions(TcpPortEndpoint endpoint, string reason)
    {
        var closed = 0;
        foreach (var session in _sessions.Values)
        {
            if (ReferenceEquals(session.Endpoint, endpoint))
            {
                session.Close(reason);
                closed++;
            }
        }
        return closed;
    }

    public int CloseAll(string reason)
    {
        var closed = 0;
        foreach (var session in _sessions.Values)
        {
            session.Close(reason);
            closed++;
        }
        return closed;
    }

    /// <summary>
    /// Closes every session whose destination is no longer among its port's YARP destinations, or whose port has no
    /// YARP cluster any more. All destinations count, not only available ones: a member marked unhealthy after a failed
    /// connect is still eligible, and its running sessions are fine.
    /// </summary>
    /// <returns>What was closed, one entry per port and member.</returns>
    public IReadOnlyList<ClosedSessions> CloseIneligible(IProxyStateLookup state)
    {
        Dictionary<(string Port, string Member, string Reason), int>? closed = null;
        foreach (var session in _sessions.Values)
        {
            string reason;
            if (!state.TryGetCluster(session.Endpoint.ClusterId, out var cluster))
            {
                reason = ReasonPortRemoved;
            }
            else if (!cluster.Destinations.ContainsKey(session.DestinationId))
            {
                reason = ReasonMemberNotEligible;
            }
            else
            {
                continue;
            }

            session.Close(reason);
            closed ??= [];
            var key = (session.Endpoint.ClusterId, session.Member, reason);
            closed[key] = closed.GetValueOrDefault(key) + 1;
        }

        if (closed is null)
        {
            return [];
        }
        var result = new List<ClosedSessions>(closed.Count);
        foreach (var ((port, member, reason), count) in closed)
        {
            result.Add(new ClosedSessions(port, member, reason, count));
        }
        return result;
    }
}

/// <summary>A destination of a port: YARP cluster id and destination id.</summary>
internal readonly record struct DestinationKey(string ClusterId, string DestinationId);

/// <summary>Sessions of one member through one configured port.</summary>
internal readonly record struct SessionGroup(string Cluster, string Port, string Member);

/// <summary>Session totals of a <see cref="SessionGroup"/>; <see cref="Opened"/> counts ended and open sessions.</summary>
internal readonly record struct SessionTraffic(int Open, long Opened, long BytesIn, long BytesOut)
{
    public SessionTraffic Add(int open, long bytesIn, long bytesOut) =>
        new(Open + open, Opened + 1, BytesIn + bytesIn, BytesOut + bytesOut);
}

/// <param name="Port">The port's YARP cluster id.</param>
internal sealed record ClosedSessions(string Port, string Member, string Reason, int Count);

/// <summary>Open sessions of one destination; reserved by the balancer before the connect so that racing picks spread.</summary>
internal sealed class SessionCounter
{
    private int _value;

    public int Value => Volatile.Read(ref _value);

    public void Increment() => Interlocked.Increment(ref _value);

    public void Decrement() => Interlocked.Decrement(ref _value);
}
