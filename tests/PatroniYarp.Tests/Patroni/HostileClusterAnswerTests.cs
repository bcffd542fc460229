using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using PatroniYarp.Configuration;
using PatroniYarp.Patroni;
using PatroniYarp.Tests.Configuration;

namespace PatroniYarp.Tests.Patroni;

/// <summary>
/// A Patroni API that turns hostile after a good answer: the poller keeps the last good state, marks the cluster stale,
/// and the log says why once per outage, however many polls see the same broken answer.
/// </summary>
public sealed class HostileClusterAnswerTests : IAsyncLifetime
{
    private const int Polls = 5;

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2030, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly ClusterStateStore _store = new();
    private readonly CapturingLoggerProvider _logs = new();
    private FakePatroniServer _server = null!;
    private ClusterPoller _poller = null!;

    public static TheoryData<string, string> BrokenAnswers()
    {
        var sample = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Patroni", "Samples", "cluster-patroni-3.0.2-sync.json"));
        return new TheoryData<string, string>
        {
            { "<html><body>502 Bad Gateway</body></html>", "not valid JSON" },
            { sample[..(sample.Length / 2)], "not valid JSON" },
            { """{"members":[{"name":"pg0","host":"127.0.0.1","port":5432}],"pad":""" + $"\"{new string('x', 2 * 1024 * 1024)}\"}}", "larger than 1048576 bytes" },
            { """{"members":[{"name":"pg0","role":"leader","host":"127.0.0.1","port":"5432"}]}""", "port is not an integer" },
            { """{"members":{"pg0":{"role":"leader"}}}""", "'members' is a object, not an array" },
            { """{"members":[{"name":"pg0","role":"leader","host":"127.0.0.1","port":5432},{"name":"pg0","role":"replica","host":"127.0.0.1","port":5433}]}""", "'pg0' appears more than once" },
            { """{"members":[{"name":"pg0","role":"leader","host":"127.0.0.1","port":-5432}]}""", "port -5432 is outside 1-65535" },
        };
    }

    public async Task InitializeAsync()
    {
        _server = await FakePatroniServer.StartAsync();
        var options = new TestOptionsMonitor<ProxyOptions>(new ProxyOptions
        {
            Clusters = new Dictionary<string, ClusterOptions> { ["demo"] = new() { Hosts = [_server.Url] } },
        });
        _poller = new ClusterPoller(_store, options, _time, _logs.CreateLogger<ClusterPoller>(), _logs.CreateLogger<PatroniApiClient>());
        await _poller.StartAsync(CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        await _poller.StopAsync(CancellationToken.None);
        _poller.Dispose();
        await _server.DisposeAsync();
    }

    [Theory]
    [MemberData(nameof(BrokenAnswers))]
    public async Task Poll_BrokenAnswerAfterGoodOne_KeepsLastGoodStateAndLogsWhyOnce(string body, string reason)
    {
        // Confirmed too: the leader's confirmation replaces the snapshot once, beside the polls.
        await Eventually.TrueAsync(() => _store.Clusters.GetValueOrDefault("demo")?.Snapshot is { LeaderConfirmed: true }, "the first good snapshot");
        var good = _store.Clusters["demo"].Snapshot;
        _server.ClusterJson = body;

        for (var i = 0; i < Polls; i++)
        {
            _time.Advance(TimeSpan.FromMilliseconds(10));
            var result = await _poller.RefreshAllAsync(CancellationToken.None);
            Assert.Contains(reason, result.Failed["demo"]);
        }

        var state = _store.Clusters["demo"];
        Assert.Same(good, state.Snapshot);
        Assert.True(state.IsStale);
        Assert.Contains(reason, state.LastError);
        var warnings = _logs.Entries.Where(e => e.Level >= LogLevel.Warning).ToList();
        var rejected = Assert.Single(warnings, e => e.Message.Contains("rejected the /cluster answer"));
        Assert.Contains(reason, rejected.Message);
        Assert.Single(warnings, e => e.Message.Contains("is stale"));
        Assert.Equal(2, warnings.Count);
    }

    [Fact]
    public async Task Poll_HostRecoversThenBreaksAgain_LogsTheNewOutage()
    {
        // Confirmed too: the leader's confirmation replaces the snapshot once, beside the polls.
        await Eventually.TrueAsync(() => _store.Clusters.GetValueOrDefault("demo")?.Snapshot is { LeaderConfirmed: true }, "the first good snapshot");
        var good = _server.ClusterJson;

        foreach (var body in new[] { "nope", good, "nope" })
        {
            _server.ClusterJson = body;
            _time.Advance(TimeSpan.FromMilliseconds(10));
            await _poller.RefreshAllAsync(CancellationToken.None);
        }

        Assert.Equal(2, _logs.Entries.Count(e => e.Level >= LogLevel.Warning && e.Message.Contains("rejected the /cluster answer")));
    }
}
