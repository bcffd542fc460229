using System.Net;
using System.Net.Sockets;
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

    private static async Task<PatroniYarpProcess> StartProxyAsync(FakeHttpApi patroni, int port, string portOptions = "connect_timeout: 2")
    {
        var admin = FreePort.Next();
        var proxy = await PatroniYarpProcess.StartAsync($$"""
            cluster_update_interval: 1
            listen_address: "127.0.0.1:{{admin}}"
            clusters:
              fake:
                hosts: ["{{patroni.Url}}"]
                ports:
                  master: {listen: "127.0.0.1:{{port}}", roles: [leader], {{portOptions}}}
            """, admin, "/", "--verbose");
        await Eventually.UntilAsync(async () =>
            (await proxy.GetJsonAsync("/clusters")).GetProperty("clusters").GetProperty("fake").GetProperty("ports").GetProperty("master")
                .GetProperty("destinations").GetArrayLength() == 1, TimeSpan.FromSeconds(20), "the fake member as destination");
        return proxy;
    }

    private static async Task<int> OpenSessionsAsync(PatroniYarpProcess proxy) =>
        (await proxy.GetJsonAsync("/connections")).GetProperty("count").GetInt32();
}
