using System.Net.Sockets;
using PatroniYarp.IntegrationTests.Infrastructure;
using PatroniYarp.Testing;

namespace PatroniYarp.IntegrationTests.Faults;

/// <summary>
/// A flood of connections to a port with no eligible member (a fake Patroni with no leader): max_waiting sessions are
/// held, every other one is refused at once, and memory and open files stay bounded and come back.
/// </summary>
public sealed class HeldSessionFloodTests
{
    private const int MaxWaiting = 100;
    private const int Flood = 2000;

    [Fact]
    public async Task Flood_NoEligibleMember_HoldsMaxWaitingRefusesTheRest_ResourcesBoundedAndBack()
    {
        await using var replica = new FakeBackend(BackendBehaviour.Silent);
        await using var patroni = new FakeHttpApi($$"""{"members":[{"name":"r0","role":"replica","state":"streaming","host":"127.0.0.1","port":{{replica.Port}},"lag":0}]}""");
        var admin = FreePort.Next();
        var port = FreePort.Next();
        await using var proxy = await PatroniYarpProcess.StartAsync($$"""
            cluster_update_interval: 1
            listen_address: "127.0.0.1:{{admin}}"
            clusters:
              fake:
                hosts: ["{{patroni.Url}}"]
                ports:
                  master: {listen: "127.0.0.1:{{port}}", roles: [leader], leader_wait_timeout: 120, max_waiting: {{MaxWaiting}}}
            """, admin);
        await Eventually.UntilAsync(async () => (await proxy.GetJsonAsync("/clusters")).GetProperty("clusters").GetProperty("fake")
            .GetProperty("members").GetArrayLength() == 1, TimeSpan.FromSeconds(20), "the fake cluster to be known");
        var baselineFiles = ProcessResources.OpenFiles(proxy.Pid);
        var baselineRss = ProcessResources.ResidentBytes(proxy.Pid);

        var clients = new List<TcpClient>();
        var ends = new List<Task<int>>();
        try
        {
            for (var i = 0; i < Flood; i++)
            {
                var client = await PgWire.ConnectAsync(port);
                clients.Add(client);
                ends.Add(ReadEndAsync(client));
            }

            await Eventually.UntilAsync(() => Task.FromResult(ends.Count(t => t.IsCompleted) >= Flood - MaxWaiting), TimeSpan.FromSeconds(60),
                $"{Flood - MaxWaiting} sessions to be refused");
            Assert.Equal(MaxWaiting, ends.Count(t => !t.IsCompleted));
            Assert.Equal(0, replica.Accepted);
            var rss = ProcessResources.ResidentBytes(proxy.Pid);
            Assert.True(rss < baselineRss + (64L << 20), $"RSS grew from {baselineRss >> 20} MiB to {rss >> 20} MiB during the flood");
        }
        finally
        {
            clients.ForEach(c => c.Dispose());
        }

        await Eventually.UntilAsync(() => Task.FromResult(ProcessResources.OpenFiles(proxy.Pid) <= baselineFiles + 1), TimeSpan.FromSeconds(30),
            $"the proxy's open files to return to {baselineFiles}");
    }

    /// <summary>Completes when the proxy ends the session (EOF or reset).</summary>
    private static async Task<int> ReadEndAsync(TcpClient client)
    {
        try
        {
            return await client.GetStream().ReadAsync(new byte[1]);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
            return 0;
        }
    }
}
