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
            // Real time for the poll this step starts (an HTTP call to a loopback server) to land; 100 ms was too short
            // on 2 busy cores, and a late landing was counted as one more step.
            var deadline = DateTime.UtcNow.AddMilliseconds(500);
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
                ? await release.Task.ContinueWith(_ => _server.WithLeader("old", "pg1"))
                : _server.WithLeader("new", "pg1");
            await context.Response.WriteAsync(json);
        };

        var older = poller.RefreshAllAsync(CancellationToken.None);
        // At least one: the cluster's own loop may poll too, and then either poll is the held one; both began before
        // the newer one, which is all this test needs. Waiting for exactly one misses it when both arrive within one check.
        await Eventually.TrueAsync(() => Volatile.Read(ref held) >= 1, "the older poll to reach the server");
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
        _server.ClusterJson = _server.WithLeader("pg2", "pg1");

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
        _server.ClusterJson = _server.WithLeader("pg2", "pg1");

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

    private ClusterSnapshot? Snapshot(string cluster = "demo") => _store.Clusters.GetValueOrDefault(cluster)?.Snapshot;

    [Fact]
    public async Task StartAsync_LeaderConfirmedByItsOwnApi_SnapshotConfirmedAndPollsCalm()
    {
        await StartAsync(new(Options(("demo", [_server.Url]))));

        await Eventually.TrueAsync(() => Snapshot()?.ConfirmedLeader?.Name == "pg1", "the leader confirmed");
        Assert.Equal(1, _server.PrimaryRequests);

        // Confirmed at once: the next poll comes after cluster_update_interval (3 s), not at the fast cadence.
        var steps = await AdvanceUntilAsync(ClusterPoller.FastInterval, () => _server.Requests == 2, 40, "the interval poll");
        Assert.True(steps >= 19, $"the second poll came after {steps} steps of 150 ms");
        Assert.Equal(1, _server.PrimaryRequests);
    }

    [Fact]
    public async Task Loop_NewLeaderStillInRecovery_UnconfirmedAndRecheckedAtTheFastCadenceUntilPromoted()
    {
        await StartAsync(new(Options(("demo", [_server.Url]))));
        await Eventually.TrueAsync(() => Snapshot()?.ConfirmedLeader?.Name == "pg1", "the first leader confirmed");

        // Patroni 3.0.x answers /primary 200 as soon as the member holds the leader lock; its body says replica
        // (pg_is_in_recovery()) until the promotion ends.
        _server.PrimaryJson = """{"state":"running","role":"replica"}""";
        _server.ClusterJson = _server.WithLeader("pg2", "pg1");
        await AdvanceUntilAsync(TimeSpan.FromMilliseconds(500), () => Snapshot()?.Leader?.Name == "pg2", 12, "the new leader polled");
        await Eventually.TrueAsync(() => _server.PrimaryRequests == 2, "the new leader asked");
        Assert.False(Snapshot()!.LeaderConfirmed);
        Assert.Null(Snapshot()!.ConfirmedLeader);

        // Asked again with every fast poll.
        var asked = _server.PrimaryRequests;
        await AdvanceUntilAsync(ClusterPoller.FastInterval, () => _server.PrimaryRequests > asked, 3, "a fast re-check");
        Assert.False(Snapshot()!.LeaderConfirmed);

        _server.PrimaryJson = FakePatroniServer.RunningPrimaryJson;
        await AdvanceUntilAsync(ClusterPoller.FastInterval, () => Snapshot()?.ConfirmedLeader?.Name == "pg2", 3, "the promoted leader confirmed");
    }

    [Theory]
    [InlineData(503, """{"state":"running","role":"master"}""")]
    [InlineData(200, """{"state":"starting","role":"master"}""")]
    [InlineData(200, """{"state":"unknown","role":"master"}""")]
    [InlineData(200, """not json""")]
    public async Task Loop_LeaderApiDoesNotSayRunningPrimaryWithLock_NeverConfirmed(int status, string body)
    {
        _server.PrimaryStatus = status;
        _server.PrimaryJson = body;
        await StartAsync(new(Options(("demo", [_server.Url]))));

        await Eventually.TrueAsync(() => _server.PrimaryRequests >= 1 && Snapshot() is not null, "the leader asked");
        await AdvanceUntilAsync(ClusterPoller.FastInterval, () => _server.PrimaryRequests >= 3, 6, "re-checks");
        Assert.Equal("pg1", Snapshot()!.Leader?.Name);
        Assert.False(Snapshot()!.LeaderConfirmed);
    }

    [Fact]
    public async Task Loop_LeaderWithoutApiUrl_NeverConfirmed()
    {
        _server.ClusterJson = FakePatroniServer.ClusterWithLeader("pg1");
        await StartAsync(new(Options(("demo", [_server.Url]))));

        await Eventually.TrueAsync(() => Snapshot()?.Leader?.Name == "pg1", "first snapshot");
        await AdvanceUntilAsync(ClusterPoller.FastInterval, () => _server.Requests >= 3, 6, "fast polls");
        Assert.False(Snapshot()!.LeaderConfirmed);
        Assert.Equal(0, _server.PrimaryRequests);
    }

    [Fact]
    public async Task Loop_LeaderApiFrozen_ClusterPollsGoOnAtTheFastCadence()
    {
        using var frozen = new FrozenServer();
        _server.ClusterJson = FakePatroniServer.ClusterWithLeader("pg1", apiUrl: $"{frozen.Url}/patroni");
        await StartAsync(new(Options(("demo", [_server.Url]))));
        await Eventually.TrueAsync(() => _server.Requests == 1, "first poll");

        // The confirmation hangs (up to api_timeout, 2 s); the polls of /cluster must not wait for it.
        for (var poll = 2; poll <= 4; poll++)
        {
            var expected = poll;
            var steps = await AdvanceUntilAsync(ClusterPoller.FastInterval, () => _server.Requests >= expected, 4, $"poll {poll}");
            Assert.True(steps <= 2, $"poll {poll} took {steps} fast steps");
        }
        Assert.False(Snapshot()!.LeaderConfirmed);
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
