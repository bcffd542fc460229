using System.Collections.Concurrent;
using Yarp.ReverseProxy.Configuration;

namespace PatroniYarp.Tcp;

/// <summary>
/// Per port, the sessions held while the port has no destination (bounded by max_waiting) and the signal that wakes
/// them: it fires whenever YARP recomputes the port's destinations (a new configuration, a passive-health
/// reactivation; see <see cref="SignalingClusterDestinationsUpdater"/>) and after every applied configuration (a
/// port's YARP cluster may be new). Nothing here runs for a session that gets a destination at once.
/// </summary>
internal sealed class HeldSessions : IConfigChangeListener
{
    /// <summary>Refusals of one port are logged at most this often (a flood must not flood the log).</summary>
    public static readonly TimeSpan RefusalLogInterval = TimeSpan.FromSeconds(10);

    private readonly ConcurrentDictionary<string, PortWaiters> _ports = new(StringComparer.Ordinal);

    /// <summary>
    /// A task that completes at the port's next destination change. Take it before reading YARP's state, so that a
    /// change between the read and the wait is not missed.
    /// </summary>
    public Task WhenChanged(string clusterId) => Port(clusterId).WhenChanged;

    /// <summary>Wakes the sessions held on one port (nothing to do when none ever waited there).</summary>
    public void Signal(string clusterId)
    {
        if (_ports.TryGetValue(clusterId, out var port))
        {
            port.Signal();
        }
    }

    public void SignalAll()
    {
        foreach (var port in _ports.Values)
        {
            port.Signal();
        }
    }

    /// <summary>Takes one of the port's <paramref name="maxWaiting"/> slots; false when all are taken.</summary>
    public bool TryHold(string clusterId, int maxWaiting) => Port(clusterId).TryHold(maxWaiting);

    public void Release(string clusterId) => Port(clusterId).Release();

    /// <summary>Sessions held on the port now.</summary>
    public int Waiting(string clusterId) => _ports.TryGetValue(clusterId, out var port) ? port.Waiting : 0;

    /// <summary>
    /// Counts a refused session; returns how many were refused since the last report when one is due (the first
    /// refusal, then at most every <see cref="RefusalLogInterval"/>), else 0.
    /// </summary>
    public long CountRefusal(string clusterId, DateTimeOffset now) => Port(clusterId).CountRefusal(now);

    public void ConfigurationApplied(IReadOnlyList<IProxyConfig> proxyConfigs) => SignalAll();

    public void ConfigurationLoaded(IReadOnlyList<IProxyConfig> proxyConfigs)
    {
    }

    public void ConfigurationLoadingFailed(IProxyConfigProvider configProvider, Exception exception)
    {
    }

    public void ConfigurationApplyingFailed(IReadOnlyList<IProxyConfig> proxyConfigs, Exception exception)
    {
    }

    private PortWaiters Port(string clusterId) => _ports.GetOrAdd(clusterId, static _ => new PortWaiters());

    private sealed class PortWaiters
    {
        private readonly Lock _refusalGate = new();
        private TaskCompletionSource _changed = NewSignal();
        private int _waiting;
        private long _refusedSinceReport;
        private DateTimeOffset _nextReport = DateTimeOffset.MinValue;

        public Task WhenChanged => Volatile.Read(ref _changed).Task;

        public int Waiting => Volatile.Read(ref _waiting);

        public void Signal() => Interlocked.Exchange(ref _changed, NewSignal()).TrySetResult();

        public bool TryHold(int maxWaiting)
        {
            while (true)
            {
                var waiting = Volatile.Read(ref _waiting);
                if (waiting >= maxWaiting)
                {
                    return false;
                }
                if (Interlocked.CompareExchange(ref _waiting, waiting + 1, waiting) == waiting)
                {
                    return true;
                }
            }
        }

        public void Release() => Interlocked.Decrement(ref _waiting);

        public long CountRefusal(DateTimeOffset now)
        {
            lock (_refusalGate)
            {
                _refusedSinceReport++;
                if (now < _nextReport)
                {
                    return 0;
                }
                _nextReport = now + RefusalLogInterval;
                var refused = _refusedSinceReport;
                _refusedSinceReport = 0;
                return refused;
            }
        }

        // Held sessions continue on the thread pool, not inside YARP's configuration update.
        private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
