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
        if (_sessions.TryRemove(session.Id, out _))
        {
            GetCounter(session.Endpoint.ClusterId, session.DestinationId).Decrement();
        }
    }

    public int Count => _sessions.Count;

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
