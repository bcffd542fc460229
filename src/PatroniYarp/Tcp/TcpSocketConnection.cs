using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;

namespace PatroniYarp.Tcp;

/// <summary>
/// A client connection accepted by <see cref="TcpSocketListenerFactory"/>. Unlike Kestrel's socket transport nothing
/// reads the socket in the background: the forwarder takes it (<see cref="TryTakeSocket"/>) and copies socket to
/// socket, so a byte crosses the proxy without a pipe, a thread-pool hop or a second copy. Middleware that asks for
/// <see cref="Transport"/> first gets ordinary pipes over the socket instead, and the socket is no longer handed out.
/// </summary>
internal sealed class TcpSocketConnection : ConnectionContext, IConnectionSocketFeature
{
    private readonly CancellationTokenSource _closed = new();
    private IDuplexPipe? _transport;
    private bool _taken;

    public TcpSocketConnection(Socket socket, string connectionId)
    {
        Socket = socket;
        ConnectionId = connectionId;
        RemoteEndPoint = socket.RemoteEndPoint;
        ConnectionClosed = _closed.Token;
        Features.Set<IConnectionSocketFeature>(this);
    }

    public Socket Socket { get; }

    public override string ConnectionId { get; set; }

    /// <summary>Asked for only when needed: every session would otherwise keep an address it rarely uses (P5).</summary>
    public override EndPoint? LocalEndPoint
    {
        get
        {
            if (field is null)
            {
                try
                {
                    field = Socket.LocalEndPoint;
                }
                catch (Exception ex) when (ex is ObjectDisposedException or SocketException)
                {
                    // Closed already: there is no address to tell.
                }
            }
            return field;
        }
        set;
    }

    public override IFeatureCollection Features { get; } = new SmallFeatureCollection();

    public override IDictionary<object, object?> Items
    {
        get => field ??= new ConnectionItems();
        set;
    }

    public override IDuplexPipe Transport
    {
        get
        {
            if (_transport is null)
            {
                if (_taken)
                {
                    throw new InvalidOperationException("The connection's socket is copied directly; it has no pipes.");
                }
                var stream = new NetworkStream(Socket, ownsSocket: false);
                _transport = new StreamPipe(PipeReader.Create(stream), PipeWriter.Create(stream));
            }
            return _transport;
        }
        set => _transport = value;
    }

    /// <summary>Hands the socket to a caller that copies it directly; false once pipes were made over it.</summary>
    public bool TryTakeSocket(out Socket socket)
    {
        socket = Socket;
        if (_transport is not null)
        {
            return false;
        }
        // No pipes (no NetworkStream, which needs a blocking socket) from now on: the forwarder sends without waiting
        // while the kernel takes the bytes (TcpForwarder.SendAsync).
        _taken = true;
        try
        {
            Socket.Blocking = false;
        }
        catch (ObjectDisposedException)
        {
            // Aborted: the copy fails on the closed socket at once.
        }
        return true;
    }

    /// <summary>Kestrel aborts connections still open when it stops: closing the socket ends the copy that uses it.</summary>
    public override void Abort(ConnectionAbortedException abortReason)
    {
        Socket.Dispose();
        Cancel();
    }

    public override async ValueTask DisposeAsync()
    {
        if (_transport is { } transport)
        {
            await transport.Input.CompleteAsync().ConfigureAwait(false);
            await transport.Output.CompleteAsync().ConfigureAwait(false);
        }
        Socket.Dispose();
        Cancel();
        _closed.Dispose();
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

    /// <summary>
    /// The handful of features a connection carries (Kestrel sets four, this transport one) in one small array, where
    /// <see cref="FeatureCollection"/> keeps a dictionary: about 250 bytes less for every open session (P5).
    /// </summary>
    private sealed class SmallFeatureCollection : IFeatureCollection
    {
        private KeyValuePair<Type, object>[] _items = new KeyValuePair<Type, object>[6];
        private int _count;

        public bool IsReadOnly => false;

        public int Revision { get; private set; }

        public object? this[Type key]
        {
            get
            {
                for (var i = 0; i < _count; i++)
                {
                    if (_items[i].Key == key)
                    {
                        return _items[i].Value;
                    }
                }
                return null;
            }
            set
            {
                ArgumentNullException.ThrowIfNull(key);
                Revision++;
                for (var i = 0; i < _count; i++)
                {
                    if (_items[i].Key != key)
                    {
                        continue;
                    }
                    if (value is null)
                    {
                        _count--;
                        _items[i] = _items[_count];
                        _items[_count] = default;
                    }
                    else
                    {
                        _items[i] = new(key, value);
                    }
                    return;
                }
                if (value is null)
                {
                    return;
                }
                if (_count == _items.Length)
                {
                    Array.Resize(ref _items, _count * 2);
                }
                _items[_count++] = new(key, value);
            }
        }

        public TFeature? Get<TFeature>() => (TFeature?)this[typeof(TFeature)];

        public void Set<TFeature>(TFeature? instance) => this[typeof(TFeature)] = instance;

        public IEnumerator<KeyValuePair<Type, object>> GetEnumerator()
        {
            for (var i = 0; i < _count; i++)
            {
                yield return _items[i];
            }
        }

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }

    private sealed class StreamPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
