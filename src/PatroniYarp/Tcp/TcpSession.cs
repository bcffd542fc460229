using System.Net;

namespace PatroniYarp.Tcp;

/// <summary>One forwarded client connection. Byte counters are updated by the forwarder, read by the admin API.</summary>
internal sealed class TcpSession : IDisposable
{
    private readonly CancellationTokenSource _closing = new();
    private long _bytesIn;
    private long _bytesOut;
    private string? _endReason;
    private EventLoopSocket? _client;
    private EventLoopSocket? _backend;

    public TcpSession(long id, TcpPortEndpoint endpoint, string destinationId, string member, EndPoint? client, EndPoint? backend,
        DateTimeOffset startedAt)
    {
        Id = id;
        Endpoint = endpoint;
        DestinationId = destinationId;
        Member = member;
        Client = client;
        Backend = backend;
        StartedAt = startedAt;
    }

    public long Id { get; }

    public TcpPortEndpoint Endpoint { get; }

    public string DestinationId { get; }

    /// <summary>Patroni member name (differs from the destination id when a resolver expanded a host name).</summary>
    public string Member { get; }

    public EndPoint? Client { get; }

    public EndPoint? Backend { get; }

    public DateTimeOffset StartedAt { get; }

    /// <summary>Bytes from the client to the backend.</summary>
    public long BytesIn => Interlocked.Read(ref _bytesIn);

    /// <summary>Bytes from the backend to the client.</summary>
    public long BytesOut => Interlocked.Read(ref _bytesOut);

    /// <summary>Cancelled when the session must end: closed by the proxy or one direction failed.</summary>
    public CancellationToken Closing => _closing.Token;

    /// <summary>Why the session ended (the first reason recorded).</summary>
    public string? EndReason => Volatile.Read(ref _endReason);

    public void AddBytesIn(long count) => Interlocked.Add(ref _bytesIn, count);

    public void AddBytesOut(long count) => Interlocked.Add(ref _bytesOut, count);

    /// <summary>Records why the session is ending without stopping the other direction (a half-close).</summary>
    public void NoteEnd(string reason) => Interlocked.CompareExchange(ref _endReason, reason, null);

    /// <summary>
    /// Ends both directions now: closes the sockets the forwarder copies between, once it has them (see
    /// <see cref="AttachSockets"/>).
    /// </summary>
    public void Close(string reason)
    {
        NoteEnd(reason);
        try
        {
            _closing.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The session already ended; a snapshot taken just before may still hold it.
        }
        CloseSockets();
    }

    /// <summary>
    /// The sockets the forwarder copies between, on their loop's thread: <see cref="Close"/> closes them, which tells
    /// the forwarder (see <see cref="EventLoopSocket.Dispose"/>).
    /// </summary>
    public void AttachSockets(EventLoopSocket client, EventLoopSocket backend)
    {
        Volatile.Write(ref _client, client);
        Volatile.Write(ref _backend, backend);
        // Closed before they were attached: Close did not see them.
        Interlocked.MemoryBarrier();
        if (_closing.IsCancellationRequested)
        {
            CloseSockets();
        }
    }

    private void CloseSockets()
    {
        Interlocked.MemoryBarrier();
        Volatile.Read(ref _client)?.Dispose();
        Volatile.Read(ref _backend)?.Dispose();
    }

    public TcpSessionInfo ToInfo() => new(Id, Endpoint.ClusterId, DestinationId, Member, Client?.ToString(), Backend?.ToString(),
        StartedAt, BytesIn, BytesOut);

    public void Dispose() => _closing.Dispose();
}

/// <summary>A read-only view of one session for the admin API.</summary>
/// <param name="Port">The port's YARP cluster id, "{cluster}/{port}".</param>
/// <param name="BytesIn">Bytes from the client to the backend.</param>
/// <param name="BytesOut">Bytes from the backend to the client.</param>
internal sealed record TcpSessionInfo(long Id, string Port, string DestinationId, string Member, string? Client, string? Backend,
    DateTimeOffset StartedAt, long BytesIn, long BytesOut);
