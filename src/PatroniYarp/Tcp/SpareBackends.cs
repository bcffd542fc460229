using System.Net.Sockets;
using Polly.Timeout;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Model;

namespace PatroniYarp.Tcp;

/// <summary>
/// A port's <c>preconnect</c>: per member it routes to, that many backend connections opened ahead of the next client.
/// PostgreSQL forks a backend process for a connection when it is accepted and then waits for the startup message, so a
/// session that starts on a spare skips the fork: `pgbench -C` through the proxy then runs as fast as a direct connection.
/// Spares are only ever connected to members the port could route to now; one whose member leaves the port (a
/// switchover, a lag limit) is closed at once, one that is taken is checked again once the client's first message is in
/// (<see cref="TcpConnectionHandler"/>), and one that PostgreSQL closes (authentication_timeout, a restart) is replaced.
/// A spare is replaced after <see cref="MaxAge"/>, well before PostgreSQL's default authentication_timeout of 60 s, so a
/// TLS handshake never starts on a backend about to time out. A port keeps spares only while clients come (a client
/// counts once it has sent its first PostgreSQL message): none before its first client, and none once no client has come
/// for <see cref="MaxAge"/>, so a quiet port, or one that only TCP health checks reach, holds no PostgreSQL process. A
/// client that leaves without a word gives its spare back unused. A spare that sends nothing and is closed leaves no log
/// line in PostgreSQL (except "connection received" where log_connections is on).
/// </summary>
internal sealed partial class SpareBackends : IConfigChangeListener, IDisposable
{
    public static readonly TimeSpan MaxAge = TimeSpan.FromSeconds(30);

    /// <summary>How long a member whose spare failed to connect or was closed young gets before the next try.</summary>
    public static readonly TimeSpan RetryPeriod = TimeSpan.FromSeconds(1);

    private readonly Lock _lock = new();
    private readonly Dictionary<SlotKey, Slot> _slots = [];
    private readonly Dictionary<TcpPortEndpoint, DateTimeOffset> _lastClient = [];
    private readonly IServiceProvider _services;
    private readonly TcpLoadBalancer _balancer;
    private readonly SocketEventLoops _loops;
    private readonly BackendConnector _connector;
    private readonly TimeProvider _time;
    private readonly ILogger<SpareBackends> _logger;
    private readonly ITimer _timer;
    private volatile Dictionary<TcpPortEndpoint, PortSpares> _ports = [];
    private bool _stopped;

    // Resolved on first use: YARP's state lookup is the config manager, which itself asks for the change listeners and
    // the destinations updater, both of which tell this store about changes.
    private IProxyStateLookup State => field ??= _services.GetRequiredService<IProxyStateLookup>();

    public SpareBackends(IServiceProvider services, TcpLoadBalancer balancer, SocketEventLoops loops, BackendConnector connector,
        TimeProvider time, ILogger<SpareBackends> logger)
    {
        _services = services;
        _balancer = balancer;
        _loops = loops;
        _connector = connector;
        _time = time;
        _logger = logger;
        // Ages spares out and retries failed members; started only while some port has preconnect.
        _timer = time.CreateTimer(static state => ((SpareBackends)state!).ReconcileAll(), this, Timeout.InfiniteTimeSpan,
            Timeout.InfiniteTimeSpan);
    }

    /// <summary>The ports with preconnect and their counts and connect timeouts, as the configuration now says.</summary>
    public void Configure(IEnumerable<(TcpPortEndpoint Endpoint, int Count, double ConnectTimeout)> ports)
    {
        var next = new Dictionary<TcpPortEndpoint, PortSpares>();
        foreach (var (endpoint, count, timeout) in ports)
        {
            if (count > 0)
            {
                next[endpoint] = new PortSpares(count, TimeSpan.FromSeconds(timeout));
            }
        }
        _ports = next;
        _timer.Change(next.Count > 0 ? RetryPeriod : Timeout.InfiniteTimeSpan, next.Count > 0 ? RetryPeriod : Timeout.InfiniteTimeSpan);
        ReconcileAll();
    }

    /// <summary>Spares of a port's member ready now (the admin API's /clusters).</summary>
    public int Ready(string clusterId, string destinationId)
    {
        lock (_lock)
        {
            return _slots.Where(s => s.Key.Endpoint.ClusterId == clusterId && s.Key.DestinationId == destinationId)
                .Sum(s => s.Value.Ready.Count);
        }
    }

    /// <summary>
    /// For a client just accepted on <paramref name="endpoint"/>: picks its member as a session would (the balancer
    /// reserves the session on it) and hands over a spare of that member, or null (nothing reserved) when there is none.
    /// </summary>
    public SpareBackend? TryTake(TcpPortEndpoint endpoint)
    {
        if (!_ports.ContainsKey(endpoint) || !IsBusy(endpoint) || endpoint.IsRetired || !State.TryGetCluster(endpoint.ClusterId, out var cluster)
            || _balancer.Pick(endpoint.ClusterId, cluster.DestinationsState.AvailableDestinations) is not { } pick)
        {
            return null;
        }
        var address = pick.Destination.Model.Config.Address;
        SpareBackend? taken = null;
        lock (_lock)
        {
            if (_slots.TryGetValue(new SlotKey(endpoint, pick.Destination.DestinationId), out var slot))
            {
                var now = _time.GetUtcNow();
                while (taken is null && slot.Ready.Count > 0)
                {
                    // The newest first: the older ones age out.
                    var spare = slot.Ready[^1];
                    slot.Ready.RemoveAt(slot.Ready.Count - 1);
                    if (spare.Address == address && now - spare.Opened < MaxAge && spare.TryClaim())
                    {
                        taken = new SpareBackend(this, endpoint, pick, address, spare.Socket, spare.Opened);
                    }
                    else
                    {
                        spare.Close();
                    }
                }
            }
        }
        if (taken is null)
        {
            pick.Counter.Decrement();
        }
        // Replaced now, on the loop's thread as the client is accepted: the next client may come before this one has
        // even been handed to the thread pool, and PostgreSQL's fork is what a spare saves.
        Reconcile(endpoint);
        return taken;
    }

    /// <summary>
    /// A client of <paramref name="endpoint"/> sent its first message: the port is in use, so it keeps spares (from now,
    /// if it was quiet) for <see cref="MaxAge"/> more.
    /// </summary>
    public void ClientSpoke(TcpPortEndpoint endpoint)
    {
        if (!_ports.ContainsKey(endpoint))
        {
            return;
        }
        bool wasBusy;
        lock (_lock)
        {
            var now = _time.GetUtcNow();
            wasBusy = IsBusyLocked(endpoint, now);
            _lastClient[endpoint] = now;
        }
        if (!wasBusy)
        {
            Reconcile(endpoint);
        }
    }

    private bool IsBusy(TcpPortEndpoint endpoint)
    {
        lock (_lock)
        {
            return IsBusyLocked(endpoint, _time.GetUtcNow());
        }
    }

    private bool IsBusyLocked(TcpPortEndpoint endpoint, DateTimeOffset now) =>
        _lastClient.TryGetValue(endpoint, out var last) && now - last < MaxAge;

    /// <summary>
    /// A spare its client never used (it left without a word: a TCP health check): kept for the next client, beside the
    /// one opened when it was taken, if it is still fresh and its member still the port's; else closed. PostgreSQL has
    /// seen nothing on it either way, and no more spares are opened while there are more than the port asks for.
    /// </summary>
    internal void GiveBack(SpareBackend unused, TcpPortEndpoint endpoint, string address, DateTimeOffset opened)
    {
        var key = new SlotKey(endpoint, unused.Pick.Destination.DestinationId);
        lock (_lock)
        {
            if (!_stopped && _ports.ContainsKey(endpoint) && _slots.TryGetValue(key, out var slot)
                && unused.Pick.Destination.Model.Config.Address == address && _time.GetUtcNow() - opened < MaxAge)
            {
                unused.Pick.Counter.Decrement();
                Keep(slot, new Spare(this, key, address, unused.Socket, opened));
                return;
            }
        }
        unused.Discard();
    }

    void IConfigChangeListener.ConfigurationLoaded(IReadOnlyList<IProxyConfig> proxyConfigs)
    {
    }

    void IConfigChangeListener.ConfigurationLoadingFailed(IProxyConfigProvider configProvider, Exception exception)
    {
    }

    void IConfigChangeListener.ConfigurationApplied(IReadOnlyList<IProxyConfig> proxyConfigs) => ReconcileAll();

    void IConfigChangeListener.ConfigurationApplyingFailed(IReadOnlyList<IProxyConfig> proxyConfigs, Exception exception)
    {
    }

    /// <summary>A port's available destinations changed (a new configuration, a passive-health change).</summary>
    public void DestinationsChanged(string clusterId)
    {
        foreach (var endpoint in _ports.Keys)
        {
            if (endpoint.ClusterId == clusterId)
            {
                Reconcile(endpoint);
            }
        }
    }

    private void ReconcileAll()
    {
        var ports = _ports;
        foreach (var endpoint in ports.Keys)
        {
            Reconcile(endpoint);
        }
        // Spares of ports no longer configured (removed, rebound, preconnect now 0).
        lock (_lock)
        {
            foreach (var (key, slot) in _slots.Where(s => !ports.ContainsKey(s.Key.Endpoint)).ToList())
            {
                slot.CloseAll();
                _slots.Remove(key);
            }
            foreach (var endpoint in _lastClient.Keys.Where(e => !ports.ContainsKey(e)).ToList())
            {
                _lastClient.Remove(endpoint);
            }
        }
    }

    /// <summary>
    /// Brings the port's spares in line with what it may route to now: closes those of members it no longer routes to,
    /// at another address or too old, and opens what is missing — while clients come; a quiet port keeps none.
    /// </summary>
    private void Reconcile(TcpPortEndpoint endpoint)
    {
        List<(SlotKey Key, string Address, TimeSpan Timeout)>? connects = null;
        lock (_lock)
        {
            if (_stopped)
            {
                return;
            }
            var now = _time.GetUtcNow();
            var wanted = _ports.TryGetValue(endpoint, out var port) && !endpoint.IsRetired && IsBusyLocked(endpoint, now)
                && State.TryGetCluster(endpoint.ClusterId, out var cluster)
                ? cluster.DestinationsState.AvailableDestinations
                : [];
            foreach (var (key, slot) in _slots.Where(s => s.Key.Endpoint == endpoint).ToList())
            {
                if (!wanted.Any(d => d.DestinationId == key.DestinationId && Usable(d)))
                {
                    slot.CloseAll();
                    _slots.Remove(key);
                }
            }
            foreach (var destination in wanted)
            {
                if (!Usable(destination))
                {
                    continue;
                }
                var key = new SlotKey(endpoint, destination.DestinationId);
                if (!_slots.TryGetValue(key, out var slot))
                {
                    _slots[key] = slot = new Slot();
                }
                var address = destination.Model.Config.Address;
                slot.CloseWhere(s => s.Address != address || now - s.Opened >= MaxAge);
                if (now < slot.RetryAt)
                {
                    continue;
                }
                for (var missing = port!.Count - slot.Ready.Count - slot.Connecting; missing > 0; missing--)
                {
                    slot.Connecting++;
                    (connects ??= []).Add((key, address, port.ConnectTimeout));
                }
            }
        }
        if (connects is not null)
        {
            foreach (var (key, address, timeout) in connects)
            {
                _ = OpenAsync(key, address, timeout);
            }
        }
    }

    /// <summary>A member a spare may be kept for: available to the port and not marked down by a failed connect.</summary>
    internal static bool Usable(DestinationState destination) => destination.Health.Passive != DestinationHealth.Unhealthy;

    private async Task OpenAsync(SlotKey key, string address, TimeSpan timeout)
    {
        EventLoopSocket? socket = null;
        try
        {
            socket = DestinationAddress.TryParse(address, out var target)
                ? await _connector.ConnectAsync(_loops.Next(), target, timeout, CancellationToken.None).ConfigureAwait(false)
                : null;
        }
        catch (Exception ex) when (ex is SocketException or TimeoutRejectedException
            or ObjectDisposedException)
        {
            Log.ConnectFailed(_logger, key.Endpoint.ClusterId, key.DestinationId, address, ex.Message);
        }
        lock (_lock)
        {
            var kept = _slots.TryGetValue(key, out var slot) && !_stopped;
            if (kept)
            {
                slot!.Connecting--;
                if (socket is null)
                {
                    slot.RetryAt = _time.GetUtcNow() + RetryPeriod;
                }
            }
            if (socket is null)
            {
                return;
            }
            if (!kept)
            {
                socket.Dispose();
                return;
            }
            Keep(slot!, new Spare(this, key, address, socket, _time.GetUtcNow()));
        }
    }

    /// <summary>A spare ready for the next client, watched for its end: PostgreSQL says nothing on a connection before its startup.</summary>
    private static void Keep(Slot slot, Spare spare)
    {
        slot.Ready.Add(spare);
        try
        {
            spare.Socket.Attach(spare);
            spare.Socket.SetInterest(Epoll.In);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            slot.Ready.Remove(spare);
            spare.Close();
        }
    }

    /// <summary>PostgreSQL closed an idle spare (authentication_timeout, shutdown, restart): it is replaced.</summary>
    private void OnClosed(Spare spare)
    {
        var age = _time.GetUtcNow() - spare.Opened;
        lock (_lock)
        {
            if (_slots.TryGetValue(spare.Key, out var slot) && slot.Ready.Remove(spare))
            {
                // Younger than MaxAge: the member closes idle connections early, or is going away; not in a tight loop.
                slot.RetryAt = _time.GetUtcNow() + RetryPeriod;
            }
        }
        spare.Socket.Dispose();
        Log.SpareClosed(_logger, spare.Key.Endpoint.ClusterId, spare.Key.DestinationId, age.TotalSeconds);
        Reconcile(spare.Key.Endpoint);
    }

    /// <summary>The process is stopping (SIGTERM): no client will take a spare any more, so every one is closed now.</summary>
    public void Stop()
    {
        _timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        lock (_lock)
        {
            _stopped = true;
            foreach (var slot in _slots.Values)
            {
                slot.CloseAll();
            }
            _slots.Clear();
        }
    }

    public void Dispose()
    {
        Stop();
        _timer.Dispose();
    }

    private readonly record struct SlotKey(TcpPortEndpoint Endpoint, string DestinationId);

    private sealed record PortSpares(int Count, TimeSpan ConnectTimeout);

    /// <summary>One member's spares on one port.</summary>
    private sealed class Slot
    {
        public List<Spare> Ready { get; } = [];

        public int Connecting { get; set; }

        public DateTimeOffset RetryAt { get; set; }

        public void CloseWhere(Predicate<Spare> predicate) => Ready.RemoveAll(spare =>
        {
            if (!predicate(spare))
            {
                return false;
            }
            spare.Close();
            return true;
        });

        public void CloseAll()
        {
            foreach (var spare in Ready)
            {
                spare.Close();
            }
            Ready.Clear();
        }
    }

    /// <summary>
    /// An idle spare, watched on its loop for PostgreSQL closing it. Its state decides once who owns the socket: a
    /// client that claims it, or the close (by the loop seeing its end, or the store).
    /// </summary>
    private sealed class Spare(SpareBackends owner, SlotKey key, string address, EventLoopSocket socket, DateTimeOffset opened)
        : ISocketEventHandler
    {
        private const int Idle = 0;
        private const int Claimed = 1;
        private const int Closed = 2;

        private int _state;

        public SlotKey Key { get; } = key;

        public string Address { get; } = address;

        public EventLoopSocket Socket { get; } = socket;

        public DateTimeOffset Opened { get; } = opened;

        public bool IsFinished => Volatile.Read(ref _state) != Idle;

        /// <summary>Takes the socket for a client: unwatched, and only if PostgreSQL has not closed it.</summary>
        public bool TryClaim()
        {
            if (Interlocked.CompareExchange(ref _state, Claimed, Idle) != Idle)
            {
                return false;
            }
            try
            {
                Socket.SetInterest(0);
                Socket.Detach();
                // Anything to read (its end, an error) means PostgreSQL let it go in the meantime.
                Span<byte> probe = stackalloc byte[1];
                if (Socket.Receive(probe, out var error, peek: true) < 0 && error == SocketError.WouldBlock)
                {
                    return true;
                }
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
            }
            Socket.Dispose();
            return false;
        }

        public void Close()
        {
            if (Interlocked.Exchange(ref _state, Closed) == Idle)
            {
                Socket.Dispose();
            }
        }

        void ISocketEventHandler.OnReady(EventLoopSocket socket, uint events)
        {
            if (Interlocked.CompareExchange(ref _state, Closed, Idle) == Idle)
            {
                owner.OnClosed(this);
            }
        }

        void ISocketEventHandler.OnPosted()
        {
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Debug, "Port {Port}: a spare connection to member {Member} at {Address} failed ({Error}); retrying in a second.")]
        public static partial void ConnectFailed(ILogger logger, string port, string member, string address, string error);

        [LoggerMessage(2, LogLevel.Debug, "Port {Port}: member {Member} closed a spare connection after {Seconds:0.0} s; replacing it.")]
        public static partial void SpareClosed(ILogger logger, string port, string member, double seconds);
    }
}

/// <summary>
/// A spare taken for a client at accept: its member was picked then (the session is reserved on it), so
/// <see cref="TcpConnectionHandler"/> uses it only if the member is still eligible once the first message is in.
/// </summary>
internal sealed class SpareBackend(SpareBackends owner, TcpPortEndpoint endpoint,
    (DestinationState Destination, SessionCounter Counter) pick, string address, EventLoopSocket socket, DateTimeOffset opened)
{
    public (DestinationState Destination, SessionCounter Counter) Pick { get; } = pick;

    public EventLoopSocket Socket { get; } = socket;

    /// <summary>Still the port's, still available and healthy, still at the address connected to.</summary>
    public bool IsStillEligible(TcpPortEndpoint current, ClusterState cluster) =>
        ReferenceEquals(current, endpoint) && !endpoint.IsRetired
        && Pick.Destination.Model.Config.Address == address
        && SpareBackends.Usable(Pick.Destination)
        && cluster.DestinationsState.AvailableDestinations.Contains(Pick.Destination);

    /// <summary>Not used: closed (PostgreSQL logs nothing for a connection that sent nothing) and the session given back.</summary>
    public void Discard()
    {
        Socket.Dispose();
        Pick.Counter.Decrement();
    }

    /// <summary>Its client left before it was used: the session is given back and the spare kept for the next client if it may be.</summary>
    public void GiveBack() => owner.GiveBack(this, endpoint, address, opened);
}
