using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Options;
using PatroniYarp.Diagnostics;

namespace PatroniYarp.Tcp;

/// <summary>
/// Kestrel's transport for the TCP ports (the admin API keeps Kestrel's own socket transport): it accepts sockets and
/// hands them over as <see cref="TcpSocketConnection"/>s without reading them, so the forwarder can copy socket to
/// socket. Kestrel still owns binding, reloads, the connection middleware pipeline and shutdown.
/// </summary>
internal sealed class TcpSocketListenerFactory(TcpEndpointManager endpoints, IOptions<SocketTransportOptions> options,
    SocketEventLoops loops, DescriptorBudget budget, ProxyMetrics metrics, TimeProvider time, ILogger<TcpSocketListenerFactory> logger)
    : IConnectionListenerFactory, IConnectionListenerFactorySelector
{
    public bool CanBind(EndPoint endpoint) => endpoint is IPEndPoint ip && endpoints.IsTcpPort(ip.Port);

    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        var ip = (IPEndPoint)endpoint;
        var socket = new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            // As Kestrel does: [::] also takes IPv4 connections.
            if (ip.Address.Equals(IPAddress.IPv6Any))
            {
                socket.DualMode = true;
            }
            socket.Bind(ip);
            socket.Listen(options.Value.Backlog);
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            socket.Dispose();
            throw new AddressInUseException(ex.Message, ex);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        // Accepted on a TCP loop too: .NET's socket engine then has no part in a TCP port's connections at all.
        socket.Blocking = false;
        return ValueTask.FromResult<IConnectionListener>(
            new Listener(socket, new EventLoopSocket(loops.Next(), socket.SafeHandle, remoteEndPoint: null), endpoints, ip.Port, loops, budget,
                new AcceptPause(socket.LocalEndPoint!, metrics, time, logger)));
    }

    /// <param name="bound">Bound and listening by .NET (as Kestrel's own transport does it); kept so it is closed once.</param>
    /// <param name="socket">The same socket as the loop watches it.</param>
    /// <param name="port">The port number it listens on: which configured port's spares its clients take.</param>
    private sealed class Listener(Socket bound, EventLoopSocket socket, TcpEndpointManager endpoints, int port, SocketEventLoops loops,
        DescriptorBudget budget, AcceptPause pause)
        : IConnectionListener
    {
        private long _accepted;

        public EndPoint EndPoint { get; } = bound.LocalEndPoint!;

        public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
        {
            while (true)
            {
                // Success when the budget is full; else why accept itself failed (out of descriptors or memory).
                var outOfResources = SocketError.Success;
                try
                {
                    await socket.WaitReadableAsync(cancellationToken).ConfigureAwait(false);
                    if (budget.TryTake())
                    {
                        if (Accept() is ({ } accepted, var spare))
                        {
                            pause.End();
                            return new TcpSocketConnection(accepted, $"{EndPoint}#{Interlocked.Increment(ref _accepted)}", budget)
                            {
                                Spare = spare,
                            };
                        }
                        // The client gave up before we accepted it, or a spurious wake-up: wait for the next one.
                        continue;
                    }
                }
                catch (Exception ex) when (ex is ObjectDisposedException or OperationCanceledException
                    || ex is SocketException { SocketErrorCode: SocketError.OperationAborted or SocketError.Interrupted })
                {
                    // Unbound: Kestrel's accept loop ends on null.
                    return null;
                }
                catch (SocketException ex) when (NativeSocket.IsOutOfResources(ex.SocketErrorCode))
                {
                    outOfResources = ex.SocketErrorCode;
                }
                catch (SocketException)
                {
                    // epoll could not watch the socket this time: try again.
                    continue;
                }

                var reason = outOfResources == SocketError.Success
                    ? ProxyMetrics.PauseReasons.Limit
                    : ProxyMetrics.PauseReasons.OutOfDescriptors;
                if (!await pause.WaitAsync(reason, DescribePause, (budget, outOfResources), cancellationToken).ConfigureAwait(false))
                {
                    return null;
                }
            }
        }

        private static string DescribePause((DescriptorBudget Budget, SocketError OutOfResources) pause) =>
            pause.OutOfResources == SocketError.Success
                ? $"{pause.Budget.Taken} sessions are open, the most the open-files limit ({pause.Budget.Limit}) leaves room for"
                : $"{pause.OutOfResources}: the process is out of file descriptors or memory";

        /// <summary>
        /// Accepts a waiting connection into the room just taken, which goes back if none comes. A port with preconnect
        /// hands it a spare backend here, before Kestrel passes it to the thread pool, and it joins the spare's loop.
        /// </summary>
        private (EventLoopSocket? Client, SpareBackend? Spare) Accept()
        {
            EventLoopSocket? accepted = null;
            SpareBackend? spare = null;
            try
            {
                accepted = socket.Accept(() =>
                {
                    spare = endpoints.TakeSpare(port);
                    return spare?.Socket.Loop ?? loops.Next();
                });
                return (accepted, spare);
            }
            finally
            {
                if (accepted is null)
                {
                    spare?.GiveBack();
                    budget.Return();
                }
            }
        }

        public ValueTask UnbindAsync(CancellationToken cancellationToken = default) => DisposeAsync();

        public ValueTask DisposeAsync()
        {
            socket.Dispose();
            bound.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
