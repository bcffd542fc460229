using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Options;
using ClusterRefreshResult = PatroniYarp.Patroni.ClusterRefreshResult;
using IClusterRefresher = PatroniYarp.Patroni.IClusterRefresher;
using PatroniYarp.Tcp;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Model;

namespace PatroniYarp.Tests.Tcp;

internal static class TcpTestSupport
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    public static async Task PollUntilAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Timed out waiting until {what}.");
            }
            await Task.Delay(20);
        }
    }

    public static Task PollUntilAsync(Func<bool> condition, string what) => PollUntilAsync(() => Task.FromResult(condition()), what);

    /// <summary>A TCP loop of its own for a test, as the proxy's sockets have (see <see cref="SocketEventLoop"/>).</summary>
    public static SocketEventLoop NewLoop() => new("test loop", Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);

    /// <summary>A connected loopback pair: a plain socket (the client or the member) and the proxy's side of it, on <paramref name="loop"/>.</summary>
    public static async Task<(Socket Peer, EventLoopSocket Proxy)> LoopPairAsync(SocketEventLoop loop)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var peer = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await peer.ConnectAsync(listener.LocalEndpoint);
        // Connected: the connection waits in the listener's queue, so this accept does not block.
        var proxy = NativeSocket.Accept(listener.Server.SafeHandle, out var remote, out var error)
            ?? throw new SocketException((int)error);
        return (peer, new EventLoopSocket(loop, proxy, remote));
    }

    /// <summary>A connected pair of loopback sockets: (proxy side, backend side).</summary>
    public static async Task<(Socket Proxy, Socket Backend)> SocketPairAsync()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var proxy = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var accept = listener.AcceptSocketAsync();
        await proxy.ConnectAsync(listener.LocalEndpoint);
        return (proxy, await accept);
    }

    /// <summary>Reads until the peer closes (0 bytes or a reset); false when it stays open for the whole timeout.</summary>
    public static async Task<bool> WaitClosedAsync(Stream stream)
    {
        using var cts = new CancellationTokenSource(Timeout);
        var buffer = new byte[256];
        try
        {
            while (await stream.ReadAsync(buffer, cts.Token) > 0)
            {
            }
            return true;
        }
        catch (IOException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    public static TcpSession NewSession(SessionRegistry registry, TcpPortEndpoint endpoint, string destinationId)
    {
        registry.GetCounter(endpoint.ClusterId, destinationId).Increment();
        return registry.Register(endpoint, destinationId, destinationId, null, null);
    }
}

internal sealed class TestOptionsMonitor<T>(T value) : IOptionsMonitor<T>
{
    private event Action<T, string?>? Changed;

    public T CurrentValue { get; private set; } = value;

    public T Get(string? name) => CurrentValue;

    public IDisposable OnChange(Action<T, string?> listener)
    {
        Changed += listener;
        return new Unsubscriber(() => Changed -= listener);
    }

    public void Set(T value)
    {
        CurrentValue = value;
        Changed?.Invoke(value, Options.DefaultName);
    }

    private sealed class Unsubscriber(Action dispose) : IDisposable
    {
        public void Dispose() => dispose();
    }
}

/// <summary>Counts the polls the TCP side asks for, per cluster.</summary>
internal sealed class RecordingRefresher : IClusterRefresher
{
    private readonly ConcurrentDictionary<string, int> _requests = new(StringComparer.Ordinal);

    public int Requests(string cluster) => _requests.GetValueOrDefault(cluster);

    public void RequestPoll(string cluster) => _requests.AddOrUpdate(cluster, 1, static (_, n) => n + 1);

    public Task<ClusterRefreshResult> RefreshAllAsync(CancellationToken cancellationToken) =>
        Task.FromResult(new ClusterRefreshResult([], new Dictionary<string, string>()));
}

/// <summary>YARP state for unit tests: clusters built by hand.</summary>
internal sealed class FakeProxyStateLookup : IProxyStateLookup
{
    public Dictionary<string, ClusterState> Clusters { get; } = [];

    public ClusterState AddCluster(string id, params string[] destinationIds)
    {
        var cluster = new ClusterState(id);
        foreach (var destinationId in destinationIds)
        {
            cluster.Destinations[destinationId] = new DestinationState(destinationId);
        }
        Clusters[id] = cluster;
        return cluster;
    }

    public bool TryGetCluster(string id, [NotNullWhen(true)] out ClusterState? cluster) => Clusters.TryGetValue(id, out cluster);

    public bool TryGetRoute(string id, [NotNullWhen(true)] out RouteModel? route)
    {
        route = null;
        return false;
    }

    public IEnumerable<RouteModel> GetRoutes() => [];

    public IEnumerable<ClusterState> GetClusters() => Clusters.Values;
}

/// <summary>A loopback TCP server that echoes what it receives, one task per connection.</summary>
internal sealed class LoopbackEcho : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Socket> _accepted = [];
    private readonly HashSet<int> _spoken = [];
    private readonly HashSet<int> _ended = [];
    private volatile int _closeOnData = -1;
    private readonly Task _acceptLoop;

    public LoopbackEcho()
    {
        _listener.Start();
        _acceptLoop = AcceptLoopAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public int Accepted
    {
        get
        {
            lock (_accepted)
            {
                return _accepted.Count;
            }
        }
    }

    /// <summary>Whether the connection accepted <paramref name="index"/>-th (from 0) has received anything.</summary>
    public bool HasReceived(int index)
    {
        lock (_accepted)
        {
            return _spoken.Contains(index);
        }
    }

    /// <summary>The connections accepted so far that have received nothing and are still open, by index.</summary>
    public IReadOnlyList<int> Silent()
    {
        lock (_accepted)
        {
            return Enumerable.Range(0, _accepted.Count).Where(i => !_spoken.Contains(i) && !_ended.Contains(i)).ToList();
        }
    }

    /// <summary>Whether the connection accepted <paramref name="index"/>-th was closed by its peer (or by <see cref="Close"/>).</summary>
    public bool HasEnded(int index)
    {
        lock (_accepted)
        {
            return _ended.Contains(index);
        }
    }

    /// <summary>
    /// Closes the connection accepted <paramref name="index"/>-th, unanswered, when data arrives on it (a PostgreSQL
    /// backend that timed out just as the startup came).
    /// </summary>
    public void CloseOnData(int index) => _closeOnData = index;

    /// <summary>Closes the connection accepted <paramref name="index"/>-th from this side.</summary>
    public void Close(int index)
    {
        lock (_accepted)
        {
            _accepted[index].Dispose();
        }
    }

    private async Task AcceptLoopAsync()
    {
        try
        {
            while (true)
            {
                var socket = await _listener.AcceptSocketAsync(_stop.Token);
                int index;
                lock (_accepted)
                {
                    index = _accepted.Count;
                    _accepted.Add(socket);
                }
                _ = EchoAsync(socket, index);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private async Task EchoAsync(Socket socket, int index)
    {
        var buffer = new byte[4096];
        try
        {
            int read;
            while ((read = await socket.ReceiveAsync(buffer, SocketFlags.None, _stop.Token)) > 0)
            {
                lock (_accepted)
                {
                    _spoken.Add(index);
                }
                if (index == _closeOnData)
                {
                    socket.Dispose();
                    break;
                }
                await socket.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, _stop.Token);
            }
            socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
        lock (_accepted)
        {
            _ended.Add(index);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        await _acceptLoop;
        lock (_accepted)
        {
            foreach (var socket in _accepted)
            {
                socket.Dispose();
            }
        }
        _stop.Dispose();
    }
}
