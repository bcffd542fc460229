using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using PatroniYarp.IntegrationTests.Diagnostics;
using PatroniYarp.IntegrationTests.Infrastructure;
using PatroniYarp.Testing;

namespace PatroniYarp.IntegrationTests.Faults;

/// <summary>
/// A member that accepts and never answers, and one that resets every connection (loopback fakes behind a fake
/// Patroni /cluster): the client's session ends cleanly and the proxy keeps no session, socket or task behind.
/// </summary>
public sealed class BackendFaultTests
{
    private const int Sessions = 20;

    // Runtime files that come and go with the proxy's own work (timers, a pooled Patroni connection).
    private const int OpenFilesSlack = 2;

    [Fact]
    public async Task SilentBackend_ClientGivesUp_ProxyClosesTheBackendSideAndLeaksNothing()
    {
        await using var backend = new FakeBackend(BackendBehaviour.Silent);
        await using var patroni = new FakeHttpApi(FakeHttpApi.ClusterWithLeaderAt(backend.Port));
        var port = FreePort.Next();
        await using var proxy = await StartProxyAsync(patroni, port);

        // The first round warms the proxy up (code paths, pools); the second must leave no more open files than the first.
        var baseline = 0;
        for (var round = 1; round <= 2; round++)
        {
            var clients = new List<TcpClient>();
            for (var i = 0; i < Sessions; i++)
            {
                clients.Add(await PgWire.ConnectAsync(port));
            }
            await Eventually.UntilAsync(() => Task.FromResult(backend.Accepted == round * Sessions), TimeSpan.FromSeconds(20), "every session to reach the backend");
            Assert.Equal(Sessions, await OpenSessionsAsync(proxy));

            clients.ForEach(c => c.Dispose());

            await Eventually.UntilAsync(() => Task.FromResult(backend.ClosedByPeer == round * Sessions), TimeSpan.FromSeconds(20), "the proxy to close every backend connection");
            await Eventually.UntilAsync(async () => await OpenSessionsAsync(proxy) == 0, TimeSpan.FromSeconds(20), "no open sessions");
            baseline = await AssertOpenFilesBackToAsync(proxy, round == 1 ? null : baseline);
        }
    }

    /// <param name="leaderWaitTimeout">0: refused at once when the member failed, as patroni_proxy does; 5 (the default):
    /// held for the member to come back.</param>
    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    public async Task ResettingBackend_ClientSessionEnds_ProxyLeaksNothing(double leaderWaitTimeout)
    {
        await using var backend = new FakeBackend(BackendBehaviour.Reset);
        await using var patroni = new FakeHttpApi(FakeHttpApi.ClusterWithLeaderAt(backend.Port));
        var port = FreePort.Next();
        await using var proxy = await StartProxyAsync(patroni, port, $"leader_wait_timeout: {leaderWaitTimeout}");

        var baseline = 0;
        for (var round = 1; round <= 2; round++)
        {
            for (var i = 0; i < Sessions; i++)
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, port);
                var stream = client.GetStream();
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
                try
                {
                    await stream.WriteAsync(PgWire.SslRequest, timeout.Token);
                    Assert.Equal(0, await stream.ReadAsync(new byte[16], timeout.Token));
                }
                catch (IOException)
                {
                    // A reset passed on as a reset is a clean end too.
                }
                catch (OperationCanceledException)
                {
                    Assert.Fail($"session {i} of round {round} did not end within 20 s; the proxy said:\n" +
                        string.Join('\n', proxy.Output.TakeLast(40)));
                }
            }
            await Eventually.UntilAsync(async () => await OpenSessionsAsync(proxy) == 0, TimeSpan.FromSeconds(20), "no open sessions");
            baseline = await AssertOpenFilesBackToAsync(proxy, round == 1 ? null : baseline);
        }

        // How often the member is tried is the proxy's business (a failed connect marks it unhealthy for a while, a held
        // session may try again once the member is back): what matters is that every client saw its session end.
        Assert.True(backend.Accepted >= 1);
        Assert.False(proxy.HasExited);
    }

    /// <summary>
    /// Under a tight ulimit -n the proxy takes the sessions the limit leaves room for, says so and names the limit, lets
    /// the next clients wait in the listen backlog instead of running out of descriptors (the .NET runtime dies when it
    /// cannot open a file), and serves them once sessions end.
    /// </summary>
    [Fact]
    public async Task OpenFilesLimitReached_NextClientsWaitAndAreServedOnceSessionsEnd()
    {
        await using var backend = new FakeBackend(BackendBehaviour.Silent);
        await using var patroni = new FakeHttpApi(FakeHttpApi.ClusterWithLeaderAt(backend.Port));
        var port = FreePort.Next();
        await using var proxy = await StartProxyAsync(patroni, port, openFilesLimit: 400);
        var budget = await BudgetAsync(proxy);
        var maxSessions = int.Parse(Regex.Match(budget, "up to (\\d+) sessions").Groups[1].Value);

        var served = new List<TcpClient>();
        var waiting = new List<TcpClient>();
        try
        {
            for (var i = 0; i < maxSessions; i++)
            {
                served.Add(await PgWire.ConnectAsync(port));
            }
            await Eventually.UntilAsync(() => Task.FromResult(backend.Accepted == maxSessions), TimeSpan.FromSeconds(20), "the sessions that fit to reach the member");
            for (var i = 0; i < 3; i++)
            {
                // The kernel completes the handshake from the backlog whether or not the proxy accepts.
                waiting.Add(await PgWire.ConnectAsync(port));
            }
            await proxy.WaitForOutputAsync(l => l.Contains($"{maxSessions} sessions are open, the most the open-files limit (400) leaves room for", StringComparison.Ordinal)
                && l.Contains("ulimit -n", StringComparison.Ordinal), "the proxy to say the limit is reached");
            Assert.Equal(maxSessions, backend.Accepted);
            Assert.Equal(maxSessions, await OpenSessionsAsync(proxy));
            // What an alert would watch: connections against the limit, and the pause.
            await PrometheusText.ScrapeUntilAsync(proxy, metrics =>
                metrics.Sum("patroniyarp_connections_limit") == maxSessions
                && metrics.Sum("patroniyarp_connections_open") == maxSessions
                && metrics.Sum("patroniyarp_accept_pauses_total", ("reason", "limit")) >= 1, TimeSpan.FromSeconds(20));

            served.ForEach(c => c.Dispose());
            await Eventually.UntilAsync(() => Task.FromResult(backend.Accepted == maxSessions + waiting.Count), TimeSpan.FromSeconds(20),
                "the waiting clients to reach the member");
            await Eventually.UntilAsync(async () => await OpenSessionsAsync(proxy) == waiting.Count, TimeSpan.FromSeconds(20), "only the waiting clients' sessions open");
            await proxy.WaitForOutputAsync(l => l.Contains("Accepting connections", StringComparison.Ordinal), "the proxy to say it accepts again");
            Assert.False(proxy.HasExited);
        }
        finally
        {
            served.ForEach(c => c.Dispose());
            waiting.ForEach(c => c.Dispose());
        }
    }

    [Fact]
    public async Task OpenFilesLimit_HttpConnectionsPastTheirShare_WaitInTheBacklogWhileTheTcpPortServes()
    {
        await using var backend = new FakeBackend(BackendBehaviour.Silent);
        await using var patroni = new FakeHttpApi(FakeHttpApi.ClusterWithLeaderAt(backend.Port));
        var port = FreePort.Next();
        await using var proxy = await StartProxyAsync(patroni, port, openFilesLimit: 400);
        var budget = await BudgetAsync(proxy);
        var maxHttp = int.Parse(Regex.Match(budget, "the HTTP API up to (\\d+) connections").Groups[1].Value);
        var admin = $"127.0.0.1:{proxy.AdminPort}";

        // More connections to the admin API than the open-files limit itself (the listen backlog holds 512): taken in,
        // they would leave the runtime no descriptor to open a file with.
        var idle = new List<TcpClient>();
        try
        {
            for (var i = 0; i < 450; i++)
            {
                var client = new TcpClient();
                idle.Add(client);
                await client.ConnectAsync(IPAddress.Loopback, proxy.AdminPort);
            }
            await proxy.WaitForOutputAsync(l => l.Contains($"Not accepting connections on {admin}", StringComparison.Ordinal)
                && l.Contains($"{maxHttp} HTTP connections are open, the most the open-files limit (400) leaves room for", StringComparison.Ordinal),
                "the proxy to say the HTTP API's share is used up");

            // The TCP port has its own share: a session still reaches the member.
            using var session = await PgWire.ConnectAsync(port);
            await Eventually.UntilAsync(() => Task.FromResult(backend.Accepted == 1), TimeSpan.FromSeconds(20), "the session to reach the member");
            Assert.False(proxy.HasExited);
        }
        finally
        {
            idle.ForEach(c => c.Dispose());
        }

        await proxy.WaitForOutputAsync(l => l.Contains($"Accepting connections on {admin} again", StringComparison.Ordinal), "the admin API to accept again");
        await Eventually.UntilAsync(async () => await OpenSessionsAsync(proxy) == 0, TimeSpan.FromSeconds(30), "the admin API to answer (no sessions open)");
        Assert.False(proxy.HasExited);
    }

    /// <summary>
    /// Without a baseline, returns the open files now (after the warm-up round); with one, waits until they are back to
    /// it, give or take <see cref="OpenFilesSlack"/>: a leak per session would show as <see cref="Sessions"/> more.
    /// </summary>
    private static async Task<int> AssertOpenFilesBackToAsync(PatroniYarpProcess proxy, int? baseline)
    {
        if (baseline is { } files)
        {
            await Eventually.UntilAsync(() => Task.FromResult(ProcessResources.OpenFiles(proxy.Pid) <= files + OpenFilesSlack), TimeSpan.FromSeconds(20),
                $"the proxy's open files ({ProcessResources.OpenFiles(proxy.Pid)}) to return to {files}");
            return files;
        }
        return ProcessResources.OpenFiles(proxy.Pid);
    }

    private static async Task<PatroniYarpProcess> StartProxyAsync(FakeHttpApi patroni, int port, string portOptions = "connect_timeout: 2",
        int? openFilesLimit = null)
    {
        var admin = FreePort.Next();
        var yaml = $$"""
            cluster_update_interval: 1
            listen_address: "127.0.0.1:{{admin}}"
            clusters:
              fake:
                hosts: ["{{patroni.Url}}"]
                ports:
                  master: {listen: "127.0.0.1:{{port}}", roles: [leader], preconnect: 0, {{portOptions}}}
            """;
        var proxy = openFilesLimit is { } limit
            ? await PatroniYarpProcess.StartAsync(yaml, admin, limit, "--verbose")
            : await PatroniYarpProcess.StartAsync(yaml, admin, "/", "--verbose");
        await Eventually.UntilAsync(async () =>
            (await proxy.GetJsonAsync("/clusters")).GetProperty("clusters").GetProperty("fake").GetProperty("ports").GetProperty("master")
                .GetProperty("destinations").GetArrayLength() == 1, TimeSpan.FromSeconds(20), "the fake member as destination");
        return proxy;
    }

    /// <summary>The log line that says what fits under the open-files limit of 400.</summary>
    private static async Task<string> BudgetAsync(PatroniYarpProcess proxy)
    {
        // Logged as the TCP ports bind; the console logger writes on its own thread, so it may come after the admin API answers.
        await proxy.WaitForOutputAsync(l => l.Contains("Open-files limit 400:", StringComparison.Ordinal), "the open-files budget in the log");
        return proxy.Output.Single(l => l.Contains("Open-files limit 400:", StringComparison.Ordinal));
    }

    private static async Task<int> OpenSessionsAsync(PatroniYarpProcess proxy) =>
        (await proxy.GetJsonAsync("/connections")).GetProperty("count").GetInt32();
}
