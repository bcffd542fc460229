using System.IO.Pipelines;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;

namespace PatroniYarp.Tcp;

/// <summary>
/// A client connection accepted by <see cref="TcpSocketListenerFactory"/>. Unlike Kestrel's socket transport nothing
/// reads the socket in the background: the handler reads the startup from it and the forwarder copies it socket to
/// socket, so a byte crosses the proxy without a pipe, a thread-pool hop or a second copy.
/// </summary>
internal sealed class TcpSocketConnection : ConnectionContext, IConnectionSocketFeature
{
    private const string NoPipes = "A TCP port's connection is copied socket to socket; it has no pipes.";

    private readonly CancellationTokenSource _closed = new();

    public TcpSocketConnection(Socket socket, string connectionId)
    {
        Socket = socket;
        ConnectionId = connectionId;
        LocalEndPoint = socket.LocalEndPoint;
        RemoteEndPoint = socket.RemoteEndPoint;
        ConnectionClosed = _closed.Token;
        Features.Set<IConnectionSocketFeature>(this);
    }

    public Socket Socket { get; }

    public override string ConnectionId { get; set; }

    public override IFeatureCollection Features { get; } = new FeatureCollection();

    public override IDictionary<object, object?> Items
    {
        get => field ??= new ConnectionItems();
        set;
    }

    /// <summary>There are no pipes: the session is copied socket to socket (see <see cref="TcpForwarder"/>).</summary>
    public override IDuplexPipe Transport
    {
        get => throw new NotSupportedException(NoPipes);
        set => throw new NotSupportedException(NoPipes);
    }

    /// <summary>Kestrel aborts connections still open when it stops: closing the socket ends the copy that uses it.</summary>
    public override void Abort(ConnectionAbortedException abortReason)
    {
        Socket.Dispose();
        Cancel();
    }

    public override ValueTask DisposeAsync()
    {
        Socket.Dispose();
        Cancel();
        _closed.Dispose();
        return ValueTask.CompletedTask;
    }

    private void Cancel()
    {
        try
        {
            _closed.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // Aborted after it was disposed: nothing is left to tell.
        }
    }
}
