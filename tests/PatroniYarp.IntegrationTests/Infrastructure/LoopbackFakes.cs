using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using PatroniYarp.Testing;

namespace PatroniYarp.IntegrationTests.Infrastructure;

/// <summary>
/// A loopback TCP relay in front of a real service (a Patroni REST API), which the test can switch off and on again
/// on the same port: off closes the listener and aborts every relayed connection, as a dead host would.
/// </summary>
internal sealed class TcpRelay : IAsyncDisposable
{
    private readonly int _target;
    private readonly ConcurrentDictionary<TcpClient, byte> _connections = new();
    private TcpListener? _listener;
    private CancellationTokenSource? _stop;
    private Task _accepting = Task.CompletedTask;

    public TcpRelay(int target)
    {
        _target = target;
        Port = FreePort.Next();
        On();
    }

    public int Port { get; }

    public string Url => $"http://127.0.0.1:{Port}";

    public void On()
    {
        _stop = new CancellationTokenSource();
        _listener = new TcpListener(IPAddress.Loopback, Port);
        _listener.Start();
        _accepting = AcceptAsync(_listener, _stop.Token);
    }

    public async Task OffAsync()
    {
        _stop?.Cancel();
        _listener?.Stop();
        await _accepting;
        foreach (var connection in _connections.Keys)
        {
            connection.Client.LingerState = new LingerOption(true, 0);
            connection.Dispose();
        }
        _connections.Clear();
    }

    public async ValueTask DisposeAsync() => await OffAsync();

    private async Task AcceptAsync(TcpListener listener, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await listener.AcceptTcpClientAsync(cancellationToken);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }
            _ = RelayAsync(client, cancellationToken);
        }
    }

    private async Task RelayAsync(TcpClient client, CancellationToken cancellationToken)
    {
        using var server = new TcpClient();
        _connections[client] = 0;
        _connections[server] = 0;
        try
        {
            await server.ConnectAsync(IPAddress.Loopback, _target, cancellationToken);
            await Task.WhenAny(
                client.GetStream().CopyToAsync(server.GetStream(), cancellationToken),
                server.GetStream().CopyToAsync(client.GetStream(), cancellationToken));
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or IOException or ObjectDisposedException)
        {
        }
        finally
        {
            _connections.TryRemove(client, out _);
            _connections.TryRemove(server, out _);
            client.Dispose();
        }
    }
}

/// <summary>
/// A loopback HTTP/1.1 stand-in for a Patroni REST API: answers every request with <see cref="Body"/> (where
/// <c>{self}</c> stands for its own URL) after <see cref="Delay"/>, and GET /primary as a running primary (so the
/// proxy can confirm a leader whose api_url is this server), then closes the connection; with <see cref="Frozen"/> it
/// accepts and never answers.
/// </summary>
internal sealed class FakeHttpApi : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;
    private int _requests;

    public FakeHttpApi(string body = "{}", TimeSpan? delay = null, bool frozen = false)
    {
        Body = body;
        Delay = delay ?? TimeSpan.Zero;
        Frozen = frozen;
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public string Body { get; set; }

    public TimeSpan Delay { get; }

    public bool Frozen { get; }

    public int Requests => Volatile.Read(ref _requests);

    public string Url => $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";

    /// <summary>A /cluster answer with one running leader at 127.0.0.1:<paramref name="port"/>, whose API is this server.</summary>
    public static string ClusterWithLeaderAt(int port) =>
        $$"""{"members":[{"name":"fake0","role":"leader","state":"running","host":"127.0.0.1","port":{{port}},"timeline":1,"api_url":"{self}/patroni"}]}""";

    private const string RunningPrimary = """{"state":"running","role":"master","timeline":1}""";

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        await _accepting;
    }

    private async Task AcceptAsync()
    {
        var open = new List<TcpClient>();
        try
        {
            while (true)
            {
                var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                open.Add(client);
                _ = AnswerAsync(client);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
        finally
        {
            open.ForEach(c => c.Dispose());
        }
    }

    private async Task AnswerAsync(TcpClient client)
    {
        try
        {
            var stream = client.GetStream();
            var request = new StringBuilder();
            var buffer = new byte[4096];
            while (!request.ToString().Contains("\r\n\r\n"))
            {
                var read = await stream.ReadAsync(buffer, _stop.Token);
                if (read == 0)
                {
                    return;
                }
                request.Append(Encoding.ASCII.GetString(buffer, 0, read));
            }
            Interlocked.Increment(ref _requests);
            if (Frozen)
            {
                await Task.Delay(Timeout.Infinite, _stop.Token);
            }
            await Task.Delay(Delay, _stop.Token);
            var body = Encoding.UTF8.GetBytes(request.ToString().StartsWith("GET /primary", StringComparison.Ordinal)
                ? RunningPrimary
                : Body.Replace("{self}", Url, StringComparison.Ordinal));
            await stream.WriteAsync(Encoding.ASCII.GetBytes(
                $"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n"), _stop.Token);
            await stream.WriteAsync(body, _stop.Token);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or ObjectDisposedException)
        {
        }
        finally
        {
            client.Dispose();
        }
    }
}

/// <summary>How a fake PostgreSQL backend treats the connections the proxy opens to it.</summary>
internal enum BackendBehaviour
{
    /// <summary>Accepts, reads, never answers.</summary>
    Silent,

    /// <summary>Accepts and at once closes with a TCP reset.</summary>
    Reset,
}

/// <summary>A loopback fake "member" for the proxy to forward to; counts connections accepted and seen closed.</summary>
internal sealed class FakeBackend : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly BackendBehaviour _behaviour;
    private readonly Task _accepting;
    private int _accepted;
    private int _closedByPeer;

    public FakeBackend(BackendBehaviour behaviour)
    {
        _behaviour = behaviour;
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public int Accepted => Volatile.Read(ref _accepted);

    /// <summary>Connections of a silent backend that the proxy closed.</summary>
    public int ClosedByPeer => Volatile.Read(ref _closedByPeer);

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        await _accepting;
    }

    private async Task AcceptAsync()
    {
        try
        {
            while (true)
            {
                var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                Interlocked.Increment(ref _accepted);
                if (_behaviour == BackendBehaviour.Reset)
                {
                    client.Client.LingerState = new LingerOption(true, 0);
                    client.Dispose();
                    continue;
                }
                _ = HoldAsync(client);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private async Task HoldAsync(TcpClient client)
    {
        using (client)
        {
            var buffer = new byte[4096];
            try
            {
                while (await client.GetStream().ReadAsync(buffer, _stop.Token) > 0)
                {
                }
                Interlocked.Increment(ref _closedByPeer);
            }
            catch (IOException)
            {
                Interlocked.Increment(ref _closedByPeer);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
            {
            }
        }
    }
}

/// <summary>What the kernel says about a process: open file descriptors, connections and resident memory.</summary>
internal static class ProcessResources
{
    public static int OpenFiles(int pid) => Directory.GetFileSystemEntries($"/proc/{pid}/fd").Length;

    /// <summary>The process's established TCP connections to <paramref name="port"/> (any loopback address).</summary>
    public static int ConnectionsTo(int pid, int port)
    {
        var sockets = new HashSet<string>(StringComparer.Ordinal);
        foreach (var fd in new DirectoryInfo($"/proc/{pid}/fd").EnumerateFileSystemInfos())
        {
            // "socket:[inode]"
            if (fd.LinkTarget is { } target && target.StartsWith("socket:[", StringComparison.Ordinal))
            {
                sockets.Add(target["socket:[".Length..^1]);
            }
        }
        var remotePort = $":{port:X4}";
        // Columns: sl local_address rem_address st ... inode (the 10th); st 01 is ESTABLISHED.
        return new[] { "/proc/net/tcp", "/proc/net/tcp6" }.Where(File.Exists).SelectMany(File.ReadLines).Skip(1)
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Count(f => f.Length > 9 && f[2].EndsWith(remotePort, StringComparison.Ordinal) && f[3] == "01" && sockets.Contains(f[9]));
    }

    public static long ResidentBytes(int pid)
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
    }
}

/// <summary>PostgreSQL wire bytes for clients that are not real drivers.</summary>
internal static class PgWire
{
    /// <summary>An SSLRequest: a valid first message that the proxy passes through untouched.</summary>
    public static readonly byte[] SslRequest = [0, 0, 0, 8, 4, 210, 22, 47];

    /// <summary>
    /// A raw client on a proxy port that has sent its first message (an SSLRequest): the proxy reads a session's first
    /// message before it looks for a member.
    /// </summary>
    public static async Task<TcpClient> ConnectAsync(int port)
    {
        var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, port);
        await client.GetStream().WriteAsync(SslRequest);
        return client;
    }
}
