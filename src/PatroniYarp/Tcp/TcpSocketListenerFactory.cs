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
        return ValueTask.FromResult<IConnectionListener>(new Listener(new EventLoopSocket(loops.Next(), socket), loops));
    }

    private sealed class Listener(EventLoopSocket socket, SocketEventLoops loops) : IConnectionListener
    {
        private long _accepted;

        public EndPoint EndPoint { get; } = socket.Socket.LocalEndPoint!;

        public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
        {
            while (true)
            {
                try
                {
                    await socket.WaitReadableAsync(cancellationToken).ConfigureAwait(false);
                    var accepted = socket.Socket.Accept();
                    accepted.NoDelay = true;
                    return new TcpSocketConnection(new EventLoopSocket(loops.Next(), accepted),
                        $"{EndPoint}#{Interlocked.Increment(ref _accepted)}");
                }
                catch (Exception ex) when (ex is ObjectDisposedException or OperationCanceledException
                    || ex is SocketException { SocketErrorCode: SocketError.OperationAborted or SocketError.Interrupted })
                {
                    // Unbound: Kestrel's accept loop ends on null.
                    return null;
                }
                catch (SocketException)
                {
                    // The client gave up before we accepted it (or it was a spurious wake-up): take the next one.
                }
            }
        }

        public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
        {
            socket.Dispose();
            return ValueTask.CompletedTask;
        }

        public ValueTask DisposeAsync()
        {
            socket.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
