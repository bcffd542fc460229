using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.Extensions.Options;
using PatroniYarp.Configuration;
using PatroniYarp.Diagnostics;
using PatroniYarp.Routing;
using Polly;
using Polly.Timeout;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace PatroniYarp.Tcp;

/// <summary>
/// The end of a TCP port's Kestrel pipeline: picks a destination from YARP's state for the port, connects (with the
/// port's timeout; a failed member is marked unhealthy for a while and the next is tried), then forwards.
/// </summary>
internal sealed partial class TcpConnectionHandler
{
    private static readonly ResiliencePropertyKey<TimeSpan> ConnectTimeoutKey = new("PatroniYarp.Tcp.ConnectTimeout");
    private static readonly TimeSpan DefaultConnectTimeout = TimeSpan.FromSeconds(2);

    private readonly IProxyStateLookup _state;
    private readonly IDestinationHealthUpdater _health;
    private readonly TcpLoadBalancer _balancer;
    private readonly SessionRegistry _registry;
    private readonly ProxyMetrics _metrics;
    private readonly IOptionsMonitor<ProxyOptions> _options;
    private readonly IOptionsMonitor<TcpProxyOptions> _tcpOptions;
    private readonly ILogger<TcpConnectionHandler> _logger;
    private readonly ResiliencePipeline _connectPipeline;

    public TcpConnectionHandler(IProxyStateLookup state, IDestinationHealthUpdater health, TcpLoadBalancer balancer,
        SessionRegistry registry, ProxyMetrics metrics, IOptionsMonitor<ProxyOptions> options, IOptionsMonitor<TcpProxyOptions> tcpOptions,
        ILogger<TcpConnectionHandler> logger)
    {
        _state = state;
        _health = health;
        _balancer = balancer;
        _registry = registry;
        _metrics = metrics;
        _options = options;
        _tcpOptions = tcpOptions;
        _logger = logger;

        // The timeout differs per port, so each execution carries its own in the context.
        _connectPipeline = new ResiliencePipelineBuilder()
            .AddTimeout(new TimeoutStrategyOptions
            {
                TimeoutGenerator = static args => ValueTask.FromResult(
                    args.Context.Properties.GetValue(ConnectTimeoutKey, DefaultConnectTimeout)),
            })
            .Build();
    }

    public async Task HandleAsync(ConnectionContext connection, TcpPortEndpoint endpoint)
    {
        var port = FindPort(endpoint);
        if (port is null || endpoint.IsRetired)
        {
            Log.NoBackend(_logger, endpoint.ClusterId, connection.RemoteEndPoint, "the port is no longer configured");
            return;
        }

        // Kestrel's socket transport sets TCP_NODELAY by default; set it here too so a transport option can't undo it.
        if (connection.Features.Get<IConnectionSocketFeature>()?.Socket is { } clientSocket)
        {
            clientSocket.NoDelay = true;
        }

        var connected = await ConnectAsync(connection, endpoint, port).ConfigureAwait(false);
        if (connected is not { } backend)
        {
            return;
        }

        var member = MemberOf(backend.Destination);
        var session = _registry.Register(endpoint, backend.Destination.DestinationId, member, connection.RemoteEndPoint,
            backend.Socket.RemoteEndPoint);
        try
        {
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
            await TcpForwarder.ForwardAsync(connection.Transport, backend.Socket, session).ConfigureAwait(false);
        }
        finally
        {
            _registry.Unregister(session);
            backend.Socket.Dispose();
            Log.SessionEnded(_logger, session.Id, endpoint.ClusterId, member, session.EndReason, session.BytesIn, session.BytesOut);
            session.Dispose();
        }
    }

    private PortOptions? FindPort(TcpPortEndpoint endpoint) =>
        _options.CurrentValue.Clusters.TryGetValue(endpoint.ClusterName, out var cluster)
        && cluster.Ports.TryGetValue(endpoint.PortName, out var port)
            ? port
            : null;

    private async Task<(Socket Socket, DestinationState Destination)?> ConnectAsync(ConnectionContext connection,
        TcpPortEndpoint endpoint, PortOptions port)
    {
        List<string>? failed = null;
        string? lastFailure = null;
        while (true)
        {
            // Read the state afresh on every attempt: a failed member drops out of the available set (passive health).
            if (!_state.TryGetCluster(endpoint.ClusterId, out var cluster))
            {
                Log.NoBackend(_logger, endpoint.ClusterId, connection.RemoteEndPoint, "the port has no routing state yet");
                return null;
            }

            // Only available destinations, never a fallback: a leader port without a known leader gets no backend.
            if (_balancer.Pick(endpoint.ClusterId, cluster.DestinationsState.AvailableDestinations, failed) is not { } pick)
            {
                Log.NoBackend(_logger, endpoint.ClusterId, connection.RemoteEndPoint, failed is null
                    ? "no eligible member"
                    : $"every eligible member failed to connect (last: {lastFailure})");
                return null;
            }

            var destination = pick.Destination;
            var address = destination.Model.Config.Address;
            string failure;
            if (!DestinationAddress.TryParse(address, out var target))
            {
                failure = $"{MemberOf(destination)}: unusable address '{address}'";
            }
            else
            {
                var socket = target is IPEndPoint ip
                    ? new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp)
                    : new Socket(SocketType.Stream, ProtocolType.Tcp);
                socket.NoDelay = true;
                var context = ResilienceContextPool.Shared.Get(connection.ConnectionClosed);
                context.Properties.Set(ConnectTimeoutKey, TimeSpan.FromSeconds(port.ConnectTimeout));
                try
                {
                    await _connectPipeline.ExecuteAsync(
                        static (ctx, state) => state.socket.ConnectAsync(state.target, ctx.CancellationToken),
                        context, (socket, target)).ConfigureAwait(false);
                    return (socket, destination);
                }
                catch (Exception ex) when (ex is SocketException or TimeoutRejectedException)
                {
                    socket.Dispose();
                    failure = ex is SocketException se
                        ? $"{MemberOf(destination)}: {se.SocketErrorCode}"
                        : $"{MemberOf(destination)}: timed out after {port.ConnectTimeout}s";
                    var period = _tcpOptions.CurrentValue.FailedDestinationReactivationPeriod;
                    _health.SetPassive(cluster, destination, DestinationHealth.Unhealthy, period);
                    Log.ConnectFailed(_logger, endpoint.ClusterId, MemberOf(destination), address, failure, period);
                    _metrics.ConnectFailed(endpoint.ClusterName, endpoint.PortName, MemberOf(destination));
                }
                catch (OperationCanceledException) when (connection.ConnectionClosed.IsCancellationRequested)
                {
                    // The client went away while we connected: nothing to forward.
                    socket.Dispose();
                    pick.Counter.Decrement();
                    return null;
                }
                catch (Exception)
                {
                    socket.Dispose();
                    pick.Counter.Decrement();
                    throw;
                }
                finally
                {
                    ResilienceContextPool.Shared.Return(context);
                }
            }

            pick.Counter.Decrement();
            (failed ??= []).Add(destination.DestinationId);
            lastFailure = failure;
        }
    }

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
    }
}
