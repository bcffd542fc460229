using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using PatroniYarp.Configuration;
using PatroniYarp.Patroni;

namespace PatroniYarp.Tests.Patroni;

public sealed class ClusterPollerTests : IAsyncLifetime
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2030, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly ClusterStateStore _store = new();
    private readonly List<ClusterPoller> _pollers = [];
    private FakePatroniServer _server = null!;

    public async Task InitializeAsync() => _server = await FakePatroniServer.StartAsync();

    public async Task DisposeAsync()
    {
        foreach (var poller in _pollers)
        {
            await poller.StopAsync(CancellationToken.None);
            poller.Dispose();
        }
        await _server.DisposeAsync();
    }

    private static ProxyOptions Options(params (string Name, string[] Hosts)[] clusters) => new()
    {
        Clusters = clusters.ToDictionary(c => c.Name, c => new ClusterOptions { Hosts = c.Hosts }),
    };

    private async Task<ClusterPoller> StartAsync(TestOptionsMonitor<ProxyOptions> options)
    {
        var poller = new ClusterPoller(_store, options, _time, NullLogger<ClusterPoller>.Instance, NullLogger<PatroniApiClient>.Instance);
        _pollers.Add(poller);
        await poller.StartAsync(CancellationToken.None);
        return poller;
    }

    private string? Leader(string cluster = "demo") => _store.Clusters.GetValueOrDefault(cluster)?.Snapshot?.Leader?.Name;

    /// <summary>Advances fake time step by step until the condition holds; returns how many steps it took.</summary>
    private async Task<int> AdvanceUntilAsync(TimeSpan step, Func<bool> condition, int maxSteps, string what)
    {
        for (var steps = 1; steps <= maxSteps; steps++)
        {
            _time.Advance(step);
            var deadline = DateTime.UtcNow.AddMilliseconds(100);
            while (DateTime.UtcNow < deadline)
            {
                if (condition())
                {
                    return steps;
                }
                await Task.Delay(5);
            }
        }
        Assert.Fail($"{what} did not happen within {maxSteps} steps of {step.TotalMilliseconds} ms");
        return maxSteps;
    }

    [Fact]
    public async Task StartAsync_ConfiguredCluster_PollsAtOnceAndStoresSnapshot()
    {
        await StartAsync(new(Options(("demo", [_server.Url]))));

        await Eventually.TrueAsync(() => Leader() == "pg1", "first snapshot");
        var state = _store.Clusters["demo"];
        Assert.False(state.IsStale);
        Assert.Equal(_server.Url, state.Snapshot?.Source);
        Assert.Equal(_time.GetUtcNow(), state.LastGoodPoll);
    }

    [Fact]
    public async Task RefreshAllAsync_EveryHostDown_MarksStaleAndKeepsLastMembers()
    {
        var poller = await StartAsync(new(Options(("demo", [_server.Url, FakePatroniServer.ClosedPortUrl()]))));
        await Eventually.TrueAsync(() => Leader() == "pg1", "first snapshot");
        var good = _store.Clusters["demo"];
        _server.Handler = context =>
        {
            context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            return Task.CompletedTask;
        };
        _time.Advance(TimeSpan.FromMilliseconds(10));

        var result = await poller.RefreshAllAsync(CancellationToken.None);

        Assert.Empty(result.Updated);
        Assert.Contains("HTTP 503", result.Failed["demo"]);
        var state = _store.Clusters["demo"];
        Assert.True(state.IsStale);
        Assert.Same(good.Snapshot, state.Snapshot);
        Assert.Equal(good.LastGoodPoll, state.LastGoodPoll);
        Assert.Equal(_time.GetUtcNow(), state.LastErrorAt);
        Assert.Contains("HTTP 503", state.LastError);
    }

    [Fact]
    public async Task RefreshAllAsync_OneClusterDown_ListsItAsFailedAndTheOtherAsUpdated()
    {
        var poller = await StartAsync(new(Options(("good", [_server.Url]), ("down", [FakePatroniServer.ClosedPortUrl()]))));

        var result = await poller.RefreshAllAsync(CancellationToken.None);

        Assert.Equal(["good"], result.Updated);
        Assert.Equal(["down"], result.Failed.Keys);
        Assert.True(_store.Clusters["down"].IsStale);
        Assert.Null(_store.Clusters["down"].Snapshot);
    }

    [Fact]
    public async Task RefreshAllAsync_OverlappingPolls_OlderAnswerNeverOverwritesNewer()
    {
        var poller = await StartAsync(new(Options(("demo", [_server.Url]))));
        await Eventually.TrueAsync(() => Leader() == "pg1", "first snapshot");
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var held = 0;
        _server.Handler = async context =>
        {
            // The first of the two polls is held and answers with the old leader after the second one finished.
            var json = Interlocked.Increment(ref held) == 1
                ? await release.Task.ContinueWith(_ => FakePatroniServer.ClusterWithLeader("old", "pg1"))
                : FakePatroniServer.ClusterWithLeader("new", "pg1");
            await context.Response.WriteAsync(json);
        };

        var older = poller.RefreshAllAsync(CancellationToken.None);
        await Eventually.TrueAsync(() => Volatile.Read(ref held) == 1, "the older poll to reach the server");
        var newer = await poller.RefreshAllAsync(CancellationToken.None);
        Assert.Equal("new", Leader());
        release.SetResult();
        var olderResult = await older;

        Assert.Equal(["demo"], newer.Updated);
        Assert.Equal(["demo"], olderResult.Updated);
        Assert.Equal("new", Leader());
    }

    [Fact]
    public async Task RequestPoll_KnownCluster_PollsWithoutWaitingForTheInterval()
    {
        var poller = await StartAsync(new(Options(("demo", [_server.Url]))));
        await Eventually.TrueAsync(() => Leader() == "pg1", "first snapshot");
        _server.ClusterJson = FakePatroniServer.ClusterWithLeader("pg2", "pg1");

        poller.RequestPoll("demo");
        poller.RequestPoll("unknown");

        // Polls are at least FastInterval apart; that is all a request waits, not the 3 s interval.
        var steps = await AdvanceUntilAsync(TimeSpan.FromMilliseconds(50), () => Leader() == "pg2", 10, "the requested poll");
        Assert.True(steps <= 4, $"the requested poll came after {steps} steps of 50 ms");
    }

    [Fact]
    public async Task RequestPoll_LeaderLooksCalm_StillPollsFastForTheRequestedPeriod()
    {
        var poller = await StartAsync(new(Options(("demo", [_server.Url]))));
        await Eventually.TrueAsync(() => _server.Requests == 1, "first poll");

        // A refused leader stays in /cluster until its shutdown ends: three calm polls must not end fast mode.
        poller.RequestPoll("demo");
        var fastPolls = (int)(ClusterPoller.RequestedFastPeriod / ClusterPoller.FastInterval);
        for (var poll = 2; poll <= fastPolls; poll++)
        {
            var expected = poll;
            var steps = await AdvanceUntilAsync(ClusterPoller.FastInterval, () => _server.Requests >= expected, 10, $"fast poll {poll}");
            Assert.True(steps <= 2, $"fast poll {poll} took {steps} steps");
        }
    }

    [Fact]
    public async Task RequestPoll_ManyInARow_PollsAtMostOncePerFastInterval()
    {
        var poller = await StartAsync(new(Options(("demo", [_server.Url]))));
        await Eventually.TrueAsync(() => _server.Requests == 1, "first poll");

        // Held sessions ask again and again; Patroni must not be polled back to back.
        const int Steps = 30;
        var step = TimeSpan.FromMilliseconds(50);
        for (var i = 0; i < Steps; i++)
        {
            for (var j = 0; j < 10; j++)
            {
                poller.RequestPoll("demo");
                await Task.Delay(1);
            }
            _time.Advance(step);
        }

        await Eventually.TrueAsync(() => _server.Requests >= 2, "a requested poll");
        var atMost = 1 + (int)(Steps * step / ClusterPoller.FastInterval);
        Assert.InRange(_server.Requests, 2, atMost);
    }

    [Fact]
    public async Task Loop_LeaderChanged_PollsFastUntilStableThenAtTheInterval()
    {
        await StartAsync(new(Options(("demo", [_server.Url]))));
        await Eventually.TrueAsync(() => _server.Requests == 1 && Leader() == "pg1", "first snapshot");
        _server.ClusterJson = FakePatroniServer.ClusterWithLeader("pg2", "pg1");

        // Stable so far: the next poll comes after cluster_update_interval (3 s).
        await AdvanceUntilAsync(TimeSpan.FromMilliseconds(500), () => Leader() == "pg2", 12, "the interval poll");

        // The leader changed: the next polls come every 150 ms; three of them see the same leader.
        for (var poll = 3; poll <= 5; poll++)
        {
            var expected = poll;
            var steps = await AdvanceUntilAsync(ClusterPoller.FastInterval, () => _server.Requests == expected, 10, $"fast poll {poll}");
            Assert.True(steps < 10, $"fast poll {poll} took {steps} steps");
        }

        // Stable again: back to the 3 s interval (20 steps of 150 ms at least).
        var calmSteps = await AdvanceUntilAsync(ClusterPoller.FastInterval, () => _server.Requests == 6, 40, "the interval poll");
        Assert.True(calmSteps >= 20, $"the poll after calming down came after {calmSteps} fast steps");
    }

    [Fact]
    public async Task OnChange_ClustersAddedAndRemoved_StartsAndStopsLoops()
    {
        var options = new TestOptionsMonitor<ProxyOptions>(Options(("a", [_server.Url])));
        var poller = await StartAsync(options);
        await Eventually.TrueAsync(() => Leader("a") == "pg1", "cluster a polled");

        options.Set(Options(("b", [_server.Url])));

        await Eventually.TrueAsync(() => Leader("b") == "pg1", "cluster b polled");
        Assert.Equal(["b"], _store.Clusters.Keys);
        var result = await poller.RefreshAllAsync(CancellationToken.None);
        Assert.Equal(["b"], result.Updated);
    }

    [Fact]
    public async Task OnChange_HostsChanged_PollsTheNewHostsAtOnce()
    {
        var options = new TestOptionsMonitor<ProxyOptions>(Options(("demo", [FakePatroniServer.ClosedPortUrl()])));
        await StartAsync(options);
        await Eventually.TrueAsync(() => _store.Clusters["demo"].LastError is not null, "the failed first poll");

        options.Set(Options(("demo", [_server.Url])));

        await Eventually.TrueAsync(() => Leader() == "pg1", "a poll of the new host");
        Assert.False(_store.Clusters["demo"].IsStale);
    }

    [Fact]
    public async Task OnChange_UnreadableCaFile_FailsPollsWithReasonInsteadOfCrashing()
    {
        var options = new TestOptionsMonitor<ProxyOptions>(Options(("demo", [_server.Url])));
        var poller = await StartAsync(options);
        await Eventually.TrueAsync(() => Leader() == "pg1", "first snapshot");

        options.Set(new ProxyOptions
        {
            Clusters = new Dictionary<string, ClusterOptions>
            {
                ["demo"] = new() { Hosts = [_server.Url], Tls = new TlsOptions { CaCert = "/nonexistent/ca.pem" } },
            },
        });
        var result = await poller.RefreshAllAsync(CancellationToken.None);

        Assert.Contains("cannot be built", result.Failed["demo"]);
        Assert.Equal("pg1", Leader());
    }

    [Fact]
    public void AddPatroniDiscovery_Resolves_OnePollerAsHostedServiceAndRefresher()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton<IOptionsMonitor<ProxyOptions>>(new TestOptionsMonitor<ProxyOptions>(new ProxyOptions()));
        services.AddPatroniDiscovery();
        using var provider = services.BuildServiceProvider();

        var refresher = provider.GetRequiredService<IClusterRefresher>();

        Assert.Same(refresher, Assert.Single(provider.GetServices<IHostedService>()));
        Assert.Same(TimeProvider.System, provider.GetRequiredService<TimeProvider>());
        Assert.NotNull(provider.GetRequiredService<ClusterStateStore>());
    }
}
