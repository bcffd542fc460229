using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Options;

namespace PatroniYarp.Tcp;

/// <summary>
/// Kestrel's transport for the TCP ports (the admin API keeps Kestrel's own socket transport): it accepts sockets and
/// hands them over as <see cref="TcpSocketConnection"/>s without reading them, so the forwarder can copy socket to
/// socket. Kestrel still owns binding, reloads, the connection middleware pipeline and shutdown.
/// </summary>
internal sealed class TcpSocketListenerFactory(TcpEndpointManager endpoints, IOptions<SocketTransportOptions> options,
    SocketEventLoops loops)
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
            new Listener(socket, new EventLoopSocket(loops.Next(), socket.SafeHandle, remoteEndPoint: null), loops));
    }

    /// <param name="bound">Bound and listening by .NET (as Kestrel's own transport does it); kept so it is closed once.</param>
    /// <param name="socket">The same socket as the loop watches it.</param>
    private sealed class Listener(Socket bound, EventLoopSocket socket, SocketEventLoops loops) : IConnectionListener
    {
        private long _accepted;

        public EndPoint EndPoint { get; } = bound.LocalEndPoint!;

        public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
        {
            while (true)
            {
                try
                {
                    await socket.WaitReadableAsync(cancellationToken).ConfigureAwait(false);
                    if (socket.Accept(loops.Next()) is { } accepted)
                    {
                        return new TcpSocketConnection(accepted, $"{EndPoint}#{Interlocked.Increment(ref _accepted)}");
                    }
                    // The client gave up before we accepted it, or a spurious wake-up: wait for the next one.
                }
                catch (Exception ex) when (ex is ObjectDisposedException or OperationCanceledException
                    || ex is SocketException { SocketErrorCode: SocketError.OperationAborted or SocketError.Interrupted })
                {
                    // Unbound: Kestrel's accept loop ends on null.
                    return null;
                }
                catch (SocketException)
                {
                    // epoll could not watch the socket this time: try again.
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
