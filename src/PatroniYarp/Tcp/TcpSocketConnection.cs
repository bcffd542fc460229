using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;

namespace PatroniYarp.Tcp;

/// <summary>
/// A client connection accepted by <see cref="TcpSocketListenerFactory"/>. Unlike Kestrel's socket transport nothing
/// reads the socket in the background: the handler reads the startup from it and the forwarder copies it socket to
/// socket, so a byte crosses the proxy without a pipe, a thread-pool hop or a second copy.
/// </summary>
internal sealed class TcpSocketConnection : ConnectionContext
{
    private const string NoPipes = "A TCP port's connection is copied socket to socket; it has no pipes.";

    private readonly CancellationTokenSource _closed = new();
    private DescriptorBudget? _budget;

    /// <param name="budget">Where the session's room was taken; given back when the connection is disposed.</param>
    public TcpSocketConnection(EventLoopSocket client, string connectionId, DescriptorBudget budget)
    {
        _budget = budget;
        Client = client;
        ConnectionId = connectionId;
        RemoteEndPoint = client.RemoteEndPoint;
        ConnectionClosed = _closed.Token;
    }

    private SpareBackend? _spare;

    /// <summary>A spare backend taken for this client at accept (see <see cref="SpareBackends"/>).</summary>
    public SpareBackend? Spare
    {
        init => _spare = value;
    }

    /// <summary>The spare, once: whoever takes it uses or discards it.</summary>
    public SpareBackend? TakeSpare() => Interlocked.Exchange(ref _spare, null);

    /// <summary>The client's socket, served by a TCP loop (see <see cref="SocketEventLoop"/>).</summary>
    public EventLoopSocket Client { get; }

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
                    field = Client.LocalEndPoint;
                }
                catch (ObjectDisposedException)
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

    /// <summary>There are no pipes: the session is copied socket to socket (see <see cref="TcpForwarder"/>).</summary>
    public override IDuplexPipe Transport
    {
        get => throw new NotSupportedException(NoPipes);
        set => throw new NotSupportedException(NoPipes);
    }

    /// <summary>Kestrel aborts connections still open when it stops: closing the socket ends the copy that uses it.</summary>
    public override void Abort(ConnectionAbortedException abortReason)
    {
        Client.Dispose();
        Cancel();
    }

    public override ValueTask DisposeAsync()
    {
        // A client that sent nothing usable (a TCP health check), or one Kestrel never handed over: its spare was not
        // used, and the next client may have it.
        TakeSpare()?.GiveBack();
        Client.Dispose();
        Interlocked.Exchange(ref _budget, null)?.Return();
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

    /// <summary>
    /// The handful of features a connection carries (Kestrel sets four) in one small array, where
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
}
