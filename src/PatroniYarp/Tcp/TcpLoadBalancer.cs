using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace PatroniYarp.Tcp;

/// <summary>
/// Least sessions: picks the destination with the fewest open sessions through this process. The scan starts at a
/// rotating index per port, so among equals each gets its turn (patroni_proxy always takes the first).
/// </summary>
internal sealed class TcpLoadBalancer(SessionRegistry registry)
{
    private readonly ConcurrentDictionary<string, StrongBox<int>> _rotation = new(StringComparer.Ordinal);

    /// <summary>
    /// Picks a destination of <paramref name="available"/> not in <paramref name="exclude"/> and reserves a session on
    /// it (its counter is incremented; the caller gives it back when the connect fails or the session ends).
    /// </summary>
    /// <returns>The destination and its counter, or null when none is left.</returns>
    public (DestinationState Destination, SessionCounter Counter)? Pick(string clusterId, IReadOnlyList<DestinationState> available,
        IReadOnlyCollection<string>? exclude = null)
    {
        var count = available.Count;
        if (count == 0)
        {
            return null;
        }

        var rotation = _rotation.GetOrAdd(clusterId, static _ => new StrongBox<int>());
        var start = (int)((uint)Interlocked.Increment(ref rotation.Value) % (uint)count);

        DestinationState? best = null;
        SessionCounter? bestCounter = null;
        var bestOpen = int.MaxValue;
        for (var i = 0; i < count; i++)
        {
            var destination = available[(start + i) % count];
            // YARP recomputes the available set on a thread-pool hop after SetPassive; the health flag itself is set at
            // once, so a member that just failed is skipped by the very next session too.
            if (exclude is not null && exclude.Contains(destination.DestinationId)
                || destination.Health.Passive == DestinationHealth.Unhealthy)
            {
                continue;
            }

            var counter = registry.GetCounter(clusterId, destination.DestinationId);
            var open = counter.Value;
            if (open < bestOpen)
            {
                best = destination;
                bestCounter = counter;
                bestOpen = open;
            }
        }

        if (best is null)
        {
            return null;
        }
        bestCounter!.Increment();
        return (best, bestCounter);
    }
}
