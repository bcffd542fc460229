using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Options;
using PatroniYarp.Configuration;
using PatroniYarp.Diagnostics;
using ClusterPoller = PatroniYarp.Patroni.ClusterPoller;
using IClusterRefresher = PatroniYarp.Patroni.IClusterRefresher;
using PatroniYarp.Routing;
using Polly.Timeout;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace PatroniYarp.Tcp;

/// <summary>
/// The end of a TCP port's Kestrel pipeline: reads the client's first PostgreSQL message (<see cref="PostgresStartup"/>),
/// picks a destination from YARP's state for the port — or takes the spare the listener gave it (preconnect, see
/// <see cref="SpareBackends"/>) if its member is still eligible — connects (with the port's timeout; a failed member is marked
/// unhealthy for a while and the next is tried), sends the first message and — for a plaintext startup — checks the
/// backend's first reply (a member that turns the session away unseen, e.g. shutting down, is treated like a failed
/// connect and the startup replayed on the next), then forwards. A session with no destination left is held until
/// one appears (see <see cref="HeldSession"/>).
/// </summary>
internal sealed partial class TcpConnectionHandler
{
    /// <summary>A held session asks for a poll again this often, so the cluster stays polled fast while it waits.</summary>
    private static readonly TimeSpan RenewPollRequestAfter = ClusterPoller.RequestedFastPeriod / 2;

    private readonly IProxyStateLookup _state;
    private readonly IDestinationHealthUpdater _health;
    private readonly TcpLoadBalancer _balancer;
    private readonly SessionRegistry _registry;
    private readonly IOptionsMonitor<ProxyOptions> _options;
    private readonly IOptionsMonitor<TcpProxyOptions> _tcpOptions;
    private readonly ILogger<TcpConnectionHandler> _logger;
    private readonly HeldSessions _held;
    private readonly ProxyMetrics _metrics;
    private readonly IClusterRefresher _refresher;
    private readonly TimeProvider _time;
    private readonly BackendConnector _connector;
    private readonly SpareBackends _spares;

    public TcpConnectionHandler(IProxyStateLookup state, IDestinationHealthUpdater health, TcpLoadBalancer balancer,
        SessionRegistry registry, IOptionsMonitor<ProxyOptions> options, IOptionsMonitor<TcpProxyOptions> tcpOptions,
        HeldSessions held, IClusterRefresher refresher, BackendConnector connector, SpareBackends spares, TimeProvider time,
        ProxyMetrics metrics, ILogger<TcpConnectionHandler> logger)
    {
        _connector = connector;
        _spares = spares;
        _held = held;
        _metrics = metrics;
        _refresher = refresher;
        _time = time;
        _state = state;
        _health = health;
        _balancer = balancer;
        _registry = registry;
        _options = options;
        _tcpOptions = tcpOptions;
        _logger = logger;
    }

    public async Task HandleAsync(ConnectionContext context, TcpPortEndpoint endpoint)
    {
        // TCP ports are bound by TcpSocketListenerFactory only: the session is copied socket to socket, never through pipes.
        var connection = context as TcpSocketConnection
            ?? throw new InvalidOperationException($"Port {endpoint.ClusterId} got a connection from another transport ({context.GetType()}).");
        var port = FindPort(endpoint);
        if (port is null || endpoint.IsRetired)
        {
            Log.NoBackend(_logger, endpoint.ClusterId, connection.RemoteEndPoint, "the port is no longer configured");
            return;
        }

        var (startup, error) = await PostgresStartup.ReadAsync(connection.Client, _time).ConfigureAwait(false);
        if (startup is null)
        {
            if (error is not null)
            {
                Log.BadFirstMessage(_logger, endpoint.ClusterId, connection.RemoteEndPoint, error);
            }
            return;
        }
        _spares.ClientSpoke(endpoint);

        (EventLoopSocket Socket, DestinationState Destination)? connected = null;
        try
        {
            connected = await ConnectAsync(connection, endpoint, port, startup).ConfigureAwait(false);
        }
        finally
        {
            if (connected is null)
            {
                startup.Dispose();
            }
        }
        if (connected is not { } backend)
        {
            return;
        }

        var member = MemberOf(backend.Destination);
        var session = _registry.Register(endpoint, backend.Destination.DestinationId, member, connection.RemoteEndPoint,
            backend.Socket.RemoteEndPoint);
        try
        {
            session.AddBytesIn(startup.Length);
            await PassReplyAsync(connection, startup, session).ConfigureAwait(false);
            // The pooled buffer goes back before forwarding: a long session holds none.
            startup.Dispose();

            // The port or the member may have gone while we connected; the reaper only sees registered sessions.
            if (endpoint.IsRetired)
            {
                session.Close(SessionRegistry.ReasonPortRemoved);
            }
            else if (!_state.TryGetCluster(endpoint.ClusterId, out var cluster)
                || !cluster.Destinations.ContainsKey(backend.Destination.DestinationId))
            {
                session.Close(SessionRegistry.ReasonMemberNotEligible);
            }

            Log.SessionStarted(_logger, session.Id, endpoint.ClusterId, member, connection.RemoteEndPoint, session.Backend);
            await TcpForwarder.ForwardAsync(connection.Client, backend.Socket, session).ConfigureAwait(false);
        }
        finally
        {
            startup.Dispose();
            _registry.Unregister(session);
            backend.Socket.Dispose();
            Log.SessionEnded(_logger, session.Id, endpoint.ClusterId, member, session.EndReason, session.BytesIn, session.BytesOut);
            session.Dispose();
        }
    }

    /// <summary>Gives the client the backend's first reply, which was held back until it was known to be no rejection.</summary>
    private static async Task PassReplyAsync(TcpSocketConnection connection, PostgresStartup startup, TcpSession session)
    {
        if (startup.Reply.IsEmpty)
        {
            return;
        }
        try
        {
            await connection.Client.SendAsync(startup.Reply, session.Closing).ConfigureAwait(false);
            session.AddBytesOut(startup.Reply.Length);
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            session.Close(TcpForwarder.ReasonClientFailed);
        }
    }

    private PortOptions? FindPort(TcpPortEndpoint endpoint) =>
        _options.CurrentValue.Clusters.TryGetValue(endpoint.ClusterName, out var cluster)
        && cluster.Ports.TryGetValue(endpoint.PortName, out var port)
            ? port
            : null;

    /// <summary>
    /// Picks and connects a destination. When none is left (none eligible, no routing state yet, every one failed to
    /// connect), the session is held: it waits for the port's destinations to change, up to leader_wait_timeout,
    /// while the cluster is polled fast; max_waiting bounds how many wait.
    /// </summary>
    /// <returns>The backend and its destination.</returns>
    private async Task<(EventLoopSocket Socket, DestinationState Destination)?> ConnectAsync(TcpSocketConnection connection,
        TcpPortEndpoint endpoint, PortOptions port, PostgresStartup startup)
    {
        List<string>? failed = null;
        string? lastFailure = null;
        Task? changed = null;
        HeldSession? held = null;
        try
        {
            while (true)
            {
                // Read the state afresh on every attempt: a failed member drops out of the available set (passive health).
                // Only available destinations, never a fallback: a leader port without a known leader gets no backend.
                _state.TryGetCluster(endpoint.ClusterId, out var cluster);
                if (cluster is not null && connection.TakeSpare() is { } spare)
                {
                    if (!spare.IsStillEligible(endpoint, cluster))
                    {
                        spare.Discard();
                    }
                    else if (await TryStartOnSpareAsync(connection, spare, startup).ConfigureAwait(false))
                    {
                        return (spare.Socket, spare.Pick.Destination);
                    }
                    else if (connection.ConnectionClosed.IsCancellationRequested)
                    {
                        return null;
                    }
                }
                if (cluster is not null
                    && _balancer.Pick(endpoint.ClusterId, cluster.DestinationsState.AvailableDestinations, failed) is { } pick)
                {
                    var (socket, failure) = await TryConnectAsync(connection, endpoint, port, cluster, pick).ConfigureAwait(false);
                    if (socket is not null)
                    {
                        failure = await TryStartAsync(connection, endpoint, cluster, pick, socket, startup).ConfigureAwait(false);
                        if (failure is null)
                        {
                            return await HandOverAsync(connection, endpoint, socket, pick, held).ConfigureAwait(false);
                        }
                    }
                    if (string.IsNullOrEmpty(failure))
                    {
                        // The client went away while we connected.
                        return null;
                    }
                    (failed ??= []).Add(pick.Destination.DestinationId);
                    lastFailure = failure;
                    continue;
                }

                var reason = cluster is null ? "the port has no routing state yet"
                    : failed is null ? "no eligible member"
                    : $"every eligible member failed to connect (last: {lastFailure})";
                if (changed is null)
                {
                    // Subscribe, then look once more: a change that landed in between is then seen, not missed.
                    changed = _held.WhenChanged(endpoint.ClusterId);
                    continue;
                }

                if (held is null)
                {
                    if (port.LeaderWaitTimeout <= 0)
                    {
                        Log.NoBackend(_logger, endpoint.ClusterId, connection.RemoteEndPoint, reason);
                        return null;
                    }
                    held = HeldSession.TryStart(_held, endpoint.ClusterId, port.MaxWaiting, connection.Client,
                        connection.ConnectionClosed, _time, port.LeaderWaitPeriod);
                    if (held is null)
                    {
                        if (_held.CountRefusal(endpoint.ClusterId, _time.GetUtcNow()) is > 0 and var refused)
                        {
                            Log.HoldRefused(_logger, endpoint.ClusterId, refused, port.MaxWaiting, reason);
                        }
                        return null;
                    }
                    Log.Holding(_logger, endpoint.ClusterId, connection.RemoteEndPoint, reason, port.LeaderWaitTimeout);
                }

                // The cluster is probably changing: learn its new state now and poll it fast until it settles.
                _refresher.RequestPoll(endpoint.ClusterName);
                switch (await held.WaitAsync(changed, RenewPollRequestAfter).ConfigureAwait(false))
                {
                    case HoldOutcome.Renew:
                        continue;
                    case HoldOutcome.ClientGone:
                        Log.HeldClientGone(_logger, endpoint.ClusterId, connection.RemoteEndPoint);
                        _metrics.SessionHoldEnded(endpoint.ClusterName, endpoint.PortName, _time.GetUtcNow() - held.Started, "client_gone");
                        return null;
                    case HoldOutcome.TimedOut:
                        Log.HoldTimedOut(_logger, endpoint.ClusterId, connection.RemoteEndPoint, port.LeaderWaitTimeout, reason);
                        _metrics.SessionHoldEnded(endpoint.ClusterName, endpoint.PortName, _time.GetUtcNow() - held.Started, "timed_out");
                        return null;
                }
                if (endpoint.IsRetired || FindPort(endpoint) is null)
                {
                    Log.NoBackend(_logger, endpoint.ClusterId, connection.RemoteEndPoint, "the port is no longer configured");
                    return null;
                }
                // Something changed: members that failed before may be back (reactivated, restarted).
                changed = null;
                failed = null;
            }
        }
        finally
        {
            if (held is not null)
            {
                await held.ReleaseAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>A connected backend: a session that was held first gives its slot back.</summary>
    private async Task<(EventLoopSocket Socket, DestinationState Destination)?> HandOverAsync(TcpSocketConnection connection,
        TcpPortEndpoint endpoint, EventLoopSocket socket, (DestinationState Destination, SessionCounter Counter) pick, HeldSession? held)
    {
        if (held is null)
        {
            return (socket, pick.Destination);
        }
        if (!await held.HandOverAsync().ConfigureAwait(false))
        {
            // The client left while it was held; the backend it waited for is not needed.
            socket.Dispose();
            pick.Counter.Decrement();
            Log.HeldClientGone(_logger, endpoint.ClusterId, connection.RemoteEndPoint);
            return null;
        }
        Log.HeldSessionForwarded(_logger, endpoint.ClusterId, connection.RemoteEndPoint,
            (_time.GetUtcNow() - held.Started).TotalMilliseconds);
        _metrics.SessionHoldEnded(endpoint.ClusterName, endpoint.PortName, _time.GetUtcNow() - held.Started, "forwarded");
        return (socket, pick.Destination);
    }

    /// <summary>
    /// Sends the client's first message to a connected backend and, for a plaintext startup, checks its first reply.
    /// On a rejection the client has seen nothing: the backend is closed, the member marked unhealthy for a while and a
    /// poll requested (a member shutting down or starting up is changing role), and the caller tries the next member.
    /// </summary>
    /// <returns>Null when the session may go on; else why not (empty when the client left).</returns>
    private async Task<string?> TryStartAsync(TcpSocketConnection connection, TcpPortEndpoint endpoint, ClusterState cluster,
        (DestinationState Destination, SessionCounter Counter) pick, EventLoopSocket socket, PostgresStartup startup)
    {
        string? rejection;
        try
        {
            rejection = await startup.SendAsync(socket, connection.ConnectionClosed).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (connection.ConnectionClosed.IsCancellationRequested)
        {
            rejection = null;
        }
        if (rejection is null && !connection.ConnectionClosed.IsCancellationRequested)
        {
            return null;
        }
        socket.Dispose();
        pick.Counter.Decrement();
        if (rejection is null)
        {
            return string.Empty;
        }
        var member = MemberOf(pick.Destination);
        var period = _tcpOptions.CurrentValue.FailedDestinationReactivationPeriod;
        _health.SetPassive(cluster, pick.Destination, DestinationHealth.Unhealthy, period);
        Log.StartupRejected(_logger, endpoint.ClusterId, member, pick.Destination.Model.Config.Address, rejection, period);
        _refresher.RequestPoll(endpoint.ClusterName);
        return $"{member}: {rejection}";
    }

    /// <summary>
    /// Sends the first message on a spare (see <see cref="SpareBackends"/>). A spare that turns it away is not held against
    /// its member: PostgreSQL may have just timed it out (authentication_timeout). The caller then connects afresh, and
    /// a member that really turns sessions away is found out by that connect.
    /// </summary>
    private async Task<bool> TryStartOnSpareAsync(TcpSocketConnection connection, SpareBackend spare, PostgresStartup startup)
    {
        string? rejection;
        try
        {
            rejection = await startup.SendAsync(spare.Socket, connection.ConnectionClosed).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (connection.ConnectionClosed.IsCancellationRequested)
        {
            rejection = string.Empty;
        }
        if (rejection is null && !connection.ConnectionClosed.IsCancellationRequested)
        {
            return true;
        }
        spare.Discard();
        if (!string.IsNullOrEmpty(rejection))
        {
            Log.SpareRejected(_logger, MemberOf(spare.Pick.Destination), rejection);
        }
        return false;
    }

    /// <summary>One connect attempt to a picked destination; its counter is given back unless it succeeds.</summary>
    /// <returns>The socket; or why it failed (the member is then marked unhealthy for a while); or neither when the client left.</returns>
    private async Task<(EventLoopSocket? Socket, string? Failure)> TryConnectAsync(TcpSocketConnection connection, TcpPortEndpoint endpoint,
        PortOptions port, ClusterState cluster, (DestinationState Destination, SessionCounter Counter) pick)
    {
        var destination = pick.Destination;
        var address = destination.Model.Config.Address;
        if (!DestinationAddress.TryParse(address, out var target))
        {
            pick.Counter.Decrement();
            return (null, $"{MemberOf(destination)}: unusable address '{address}'");
        }

        try
        {
            // On the client's loop: the forwarder serves both sockets of a session on one thread.
            var socket = await _connector.ConnectAsync(connection.Client.Loop, target, TimeSpan.FromSeconds(port.ConnectTimeout),
                connection.ConnectionClosed).ConfigureAwait(false);
            return (socket, null);
        }
        catch (SocketException ex) when (NativeSocket.IsOutOfResources(ex.SocketErrorCode))
        {
            // The proxy's own limit, not the member's fault: the member stays in, this session cannot be served.
            pick.Counter.Decrement();
            Log.NoDescriptor(_logger, endpoint.ClusterId, connection.RemoteEndPoint, ex.SocketErrorCode);
            return (null, null);
        }
        catch (Exception ex) when (ex is SocketException or TimeoutRejectedException)
        {
            pick.Counter.Decrement();
            var failure = ex is SocketException se
                ? $"{MemberOf(destination)}: {se.SocketErrorCode}"
                : $"{MemberOf(destination)}: timed out after {port.ConnectTimeout}s";
            var period = _tcpOptions.CurrentValue.FailedDestinationReactivationPeriod;
            _health.SetPassive(cluster, destination, DestinationHealth.Unhealthy, period);
            Log.ConnectFailed(_logger, endpoint.ClusterId, MemberOf(destination), address, failure, period);
            _metrics.ConnectFailed(endpoint.ClusterName, endpoint.PortName, MemberOf(destination));
            if (IsLeader(destination))
            {
                // The leader may be gone (switchover, failover): ask Patroni now rather than at the next interval.
                _refresher.RequestPoll(endpoint.ClusterName);
            }
            return (null, failure);
        }
        catch (OperationCanceledException) when (connection.ConnectionClosed.IsCancellationRequested)
        {
            pick.Counter.Decrement();
            return (null, null);
        }
        catch (Exception)
        {
            pick.Counter.Decrement();
            throw;
        }
    }

    private static bool IsLeader(DestinationState destination) =>
        destination.Model.Config.Metadata?.TryGetValue(ProxyClusterIds.Metadata.Role, out var role) == true
        && role is "leader" or "standby_leader";

    private static string MemberOf(DestinationState destination) =>
        destination.Model.Config.Metadata?.TryGetValue(ProxyClusterIds.Metadata.Member, out var member) == true
        && !string.IsNullOrEmpty(member)
            ? member
            : destination.DestinationId;

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Port {Port}: no backend for the session from {Client}: {Reason}; closing it.")]
        public static partial void NoBackend(ILogger logger, string port, EndPoint? client, string reason);

        [LoggerMessage(2, LogLevel.Warning,
            "Port {Port}: connect to member {Member} at {Address} failed ({Failure}); it is skipped for {Period}.")]
        public static partial void ConnectFailed(ILogger logger, string port, string member, string address, string failure,
            TimeSpan period);

        [LoggerMessage(3, LogLevel.Debug, "Session {Id} on port {Port}: {Client} -> member {Member} at {Backend}.")]
        public static partial void SessionStarted(ILogger logger, long id, string port, string member, EndPoint? client,
            EndPoint? backend);

        [LoggerMessage(4, LogLevel.Debug, "Session {Id} on port {Port} to member {Member} ended ({Reason}): {BytesIn} bytes in, {BytesOut} bytes out.")]
        public static partial void SessionEnded(ILogger logger, long id, string port, string member, string? reason, long bytesIn,
            long bytesOut);

        [LoggerMessage(5, LogLevel.Debug, "Port {Port}: no backend for the session from {Client} ({Reason}); holding it up to {Timeout} s for one.")]
        public static partial void Holding(ILogger logger, string port, EndPoint? client, string reason, double timeout);

        [LoggerMessage(6, LogLevel.Warning, "Port {Port}: no backend for the session from {Client} within leader_wait_timeout ({Timeout} s; {Reason}); closing it.")]
        public static partial void HoldTimedOut(ILogger logger, string port, EndPoint? client, double timeout, string reason);

        [LoggerMessage(7, LogLevel.Warning, "Port {Port}: {Count} session(s) refused at once: max_waiting ({MaxWaiting}) sessions already wait for a backend ({Reason}).")]
        public static partial void HoldRefused(ILogger logger, string port, long count, int maxWaiting, string reason);

        [LoggerMessage(8, LogLevel.Debug, "Port {Port}: the session from {Client} went away while held.")]
        public static partial void HeldClientGone(ILogger logger, string port, EndPoint? client);

        [LoggerMessage(9, LogLevel.Debug, "Port {Port}: the session from {Client} was held {Milliseconds:0} ms until a backend appeared.")]
        public static partial void HeldSessionForwarded(ILogger logger, string port, EndPoint? client, double milliseconds);

        [LoggerMessage(10, LogLevel.Warning, "Port {Port}: closing the session from {Client}: {Reason}.")]
        public static partial void BadFirstMessage(ILogger logger, string port, EndPoint? client, string reason);

        [LoggerMessage(11, LogLevel.Warning,
            "Port {Port}: member {Member} at {Address} turned a session away before the client saw anything ({Rejection}); it is skipped for {Period} and the startup is replayed on the next member.")]
        public static partial void StartupRejected(ILogger logger, string port, string member, string address, string rejection,
            TimeSpan period);

        [LoggerMessage(12, LogLevel.Error,
            "Port {Port}: closing the session from {Client}: no socket for its backend ({Error}: out of file descriptors or memory; raise the open-files limit, ulimit -n).")]
        public static partial void NoDescriptor(ILogger logger, string port, EndPoint? client, SocketError error);

        [LoggerMessage(13, LogLevel.Debug, "A spare connection to member {Member} turned its session away ({Rejection}); connecting afresh.")]
        public static partial void SpareRejected(ILogger logger, string member, string rejection);
    }
}
