using Microsoft.Extensions.Options;
using PatroniYarp.Configuration;
using PatroniYarp.Patroni;

namespace PatroniYarp.Tests.Routing;

/// <summary>Members, snapshots and options shared by the routing and admin tests.</summary>
internal static class RoutingTestData
{
    public const string Cluster = "main";

    public static PatroniMember Member(
        string name,
        MemberRole role,
        string state = "running",
        string host = "127.0.0.1",
        int port = 5432,
        long? lag = 0,
        IReadOnlyDictionary<string, string>? tags = null) =>
        new(name, role, state, host, port, $"http://{host}:8008/patroni", Timeline: 7, lag, tags ?? new Dictionary<string, string>());

    /// <summary>A snapshot whose leader (if any) its own API confirmed, as the poller stores it once it did.</summary>
    public static ClusterSnapshot Snapshot(long sequence, params PatroniMember[] members) =>
        Unconfirmed(sequence, members) with { LeaderConfirmed = true };

    /// <summary>A snapshot as /cluster gives it, before the leader's own API confirmed it.</summary>
    public static ClusterSnapshot Unconfirmed(long sequence, params PatroniMember[] members) =>
        new(sequence, members, DateTimeOffset.Parse("2025-01-01T00:00:00Z"), "http://127.0.0.1:8001", Paused: false);

    /// <summary>shared/reference/cluster-patroni-3.0.2-sync.json: pg0 sync_standby, pg1 leader, pg2 replica.</summary>
    public static ClusterSnapshot Sample302(long sequence = 1, long pg2Lag = 0) => Snapshot(
        sequence,
        Member("pg0", MemberRole.SyncStandby, port: 5430, lag: 0),
        Member("pg1", MemberRole.Leader, port: 5431, lag: null),
        Member("pg2", MemberRole.Replica, port: 5432, lag: pg2Lag));

    public static PortOptions Port(string listen, params string[] roles) => new() { Listen = listen, Roles = roles };

    /// <summary>master (leader), replicas (sync + async) and a lag-limited replica port (1 KiB).</summary>
    public static ProxyOptions SampleOptions() => Options(new Dictionary<string, PortOptions>
    {
        ["master"] = Port("127.0.0.1:6432", "leader"),
        ["replicas"] = Port("127.0.0.1:6433", "sync", "async"),
        ["fresh"] = Port("127.0.0.1:6434", "replica") with { MaxLagInBytes = 1024 },
    });

    public static ProxyOptions Options(IReadOnlyDictionary<string, PortOptions> ports) => new()
    {
        Clusters = new Dictionary<string, ClusterOptions>
        {
            [Cluster] = new() { Hosts = ["http://127.0.0.1:8001"], Ports = ports },
        },
    };

    public static ClusterStateStore Store(ClusterSnapshot? snapshot)
    {
        var store = new ClusterStateStore();
        store.SetClusters([Cluster]);
        if (snapshot is not null)
        {
            Assert.True(store.TryApply(Cluster, snapshot));
        }
        return store;
    }

    /// <summary>Polls until the condition holds; fails after a generous timeout (no fixed sleeps).</summary>
    public static Task WaitUntilAsync(Func<bool> condition, string what) =>
        WaitUntilAsync(() => Task.FromResult(condition()), what);

    public static async Task WaitUntilAsync(Func<Task<bool>> condition, string what)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (!await condition())
        {
            try
            {
                await Task.Delay(20, timeout.Token);
            }
            catch (OperationCanceledException)
            {
                Assert.Fail($"Timed out waiting until {what}.");
            }
        }
    }
}

/// <summary>An options monitor whose value the test sets; listeners are told like a configuration reload.</summary>
internal sealed class TestOptionsMonitor<T>(T value) : IOptionsMonitor<T>
{
    private readonly List<Action<T, string?>> _listeners = [];

    public T CurrentValue { get; private set; } = value;

    public T Get(string? name) => CurrentValue;

    public void Set(T value)
    {
        CurrentValue = value;
        foreach (var listener in _listeners.ToArray())
        {
            listener(value, Options.DefaultName);
        }
    }

    public IDisposable? OnChange(Action<T, string?> listener)
    {
        _listeners.Add(listener);
        return new Subscription(() => _listeners.Remove(listener));
    }

    private sealed class Subscription(Action dispose) : IDisposable
    {
        public void Dispose() => dispose();
    }
}
