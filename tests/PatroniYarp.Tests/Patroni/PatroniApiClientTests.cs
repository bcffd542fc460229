using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;
using PatroniYarp.Configuration;
using PatroniYarp.Patroni;
using Xunit.Abstractions;

namespace PatroniYarp.Tests.Patroni;

public sealed class PatroniApiClientTests(ITestOutputHelper output)
{
    private static readonly TimeSpan DefaultApiTimeout = new ProxyOptions().ApiTimeoutPeriod;

    private static PatroniApiClient CreateClient(IReadOnlyList<string> hosts, TlsOptions? tls = null, TimeSpan? apiTimeout = null) =>
        new("demo", new ClusterOptions { Hosts = hosts, Tls = tls }, apiTimeout ?? DefaultApiTimeout, TimeProvider.System,
            NullLogger<PatroniApiClient>.Instance);

    [Fact]
    public async Task GetClusterAsync_DeadHostFirst_SucceedsViaSecondHostAndTriesItFirstNext()
    {
        await using var good = await FakePatroniServer.StartAsync();
        var dead = FakePatroniServer.ClosedPortUrl();
        using var client = CreateClient([dead, good.Url]);

        var watch = Stopwatch.StartNew();
        var result = await client.GetClusterAsync(CancellationToken.None);
        output.WriteLine($"One poll with a dead host first took {watch.Elapsed.TotalMilliseconds:0} ms");

        Assert.True(result.IsSuccess, result.Error);
        Assert.Equal(good.Url, result.Source);
        Assert.Equal(2, result.Answer.Members.Count);
        Assert.Equal([good.Url, dead], client.HostOrder.ToArray());

        var next = await client.GetClusterAsync(CancellationToken.None);
        Assert.True(next.IsSuccess, next.Error);
        Assert.Equal(2, good.Requests);
    }

    [Fact]
    public async Task GetClusterAsync_FrozenHostFirst_GivesUpOnItAfterApiTimeoutAndUsesSecondHost()
    {
        await using var good = await FakePatroniServer.StartAsync();
        using var frozen = new FrozenServer();
        using var client = CreateClient([frozen.Url, good.Url]);

        var watch = Stopwatch.StartNew();
        var result = await client.GetClusterAsync(CancellationToken.None);
        output.WriteLine($"One poll with a frozen host first took {watch.Elapsed.TotalMilliseconds:0} ms (api_timeout {DefaultApiTimeout.TotalMilliseconds:0} ms)");

        Assert.True(result.IsSuccess, result.Error);
        Assert.Equal(good.Url, result.Source);
        Assert.Equal(good.Url, client.HostOrder[0]);

        var next = await client.GetClusterAsync(CancellationToken.None);
        Assert.True(next.IsSuccess, next.Error);
        Assert.Equal(good.Url, next.Source);
        Assert.Equal(2, good.Requests);
    }

    [Theory]
    [InlineData(503)]
    [InlineData(404)]
    [InlineData(302)]
    public async Task GetClusterAsync_Non2xxStatus_TriesNextHost(int status)
    {
        await using var failing = await FakePatroniServer.StartAsync();
        failing.Handler = context =>
        {
            context.Response.StatusCode = status;
            context.Response.Headers.Location = "http://127.0.0.1:1/elsewhere";
            return context.Response.WriteAsync(FakePatroniServer.ClusterWithLeader("wrong"));
        };
        await using var good = await FakePatroniServer.StartAsync();
        using var client = CreateClient([failing.Url, good.Url]);

        var result = await client.GetClusterAsync(CancellationToken.None);

        Assert.True(result.IsSuccess, result.Error);
        Assert.Equal(good.Url, result.Source);
        Assert.Equal(1, failing.Requests);
        Assert.Equal("pg1", result.Answer.Members[0].Name);
    }

    [Fact]
    public async Task GetClusterAsync_BrokenAnswerFirst_TriesNextHost()
    {
        await using var broken = await FakePatroniServer.StartAsync();
        broken.ClusterJson = """{"members":[{"name":"a","host":"h","port":-1}]}""";
        await using var good = await FakePatroniServer.StartAsync();
        using var client = CreateClient([broken.Url, good.Url]);

        var result = await client.GetClusterAsync(CancellationToken.None);

        Assert.True(result.IsSuccess, result.Error);
        Assert.Equal(good.Url, result.Source);
    }

    [Fact]
    public async Task GetClusterAsync_EveryHostFails_NamesEachHostAndReason()
    {
        await using var unavailable = await FakePatroniServer.StartAsync();
        unavailable.Handler = context =>
        {
            context.Response.StatusCode = 503;
            return Task.CompletedTask;
        };
        var dead = FakePatroniServer.ClosedPortUrl();
        using var client = CreateClient([unavailable.Url, dead]);

        var result = await client.GetClusterAsync(CancellationToken.None);

        Assert.False(result.IsSuccess);
        Assert.Contains($"{unavailable.Url}: HTTP 503", result.Error);
        Assert.Contains($"{dead}: ", result.Error);
    }

    [Fact]
    public async Task GetClusterAsync_HugeChunkedAnswer_IsRejected()
    {
        await using var huge = await FakePatroniServer.StartAsync();
        huge.Handler = async context =>
        {
            var chunk = new byte[64 * 1024];
            chunk.AsSpan().Fill((byte)' ');
            await context.Response.WriteAsync("{\"members\":[]");
            for (var i = 0; i < 64 && !context.RequestAborted.IsCancellationRequested; i++)
            {
                await context.Response.Body.WriteAsync(chunk, context.RequestAborted);
            }
            await context.Response.WriteAsync("}");
        };
        using var client = CreateClient([huge.Url]);

        var result = await client.GetClusterAsync(CancellationToken.None);

        Assert.False(result.IsSuccess);
        Assert.Contains("larger than 1048576 bytes", result.Error);
    }

    [Fact]
    public async Task GetClusterAsync_ContentLengthOverLimit_IsRejectedBeforeReading()
    {
        await using var huge = await FakePatroniServer.StartAsync();
        huge.Handler = context =>
        {
            context.Response.ContentLength = 2 * 1024 * 1024;
            return context.Response.Body.WriteAsync(new byte[2 * 1024 * 1024]).AsTask();
        };
        using var client = CreateClient([huge.Url]);

        var result = await client.GetClusterAsync(CancellationToken.None);

        Assert.False(result.IsSuccess);
        Assert.Contains("larger than 1048576 bytes", result.Error);
    }

    [Fact]
    public async Task GetClusterAsync_TlsWithCaCertAndClientCertificate_SucceedsAndPresentsCertificate()
    {
        using var certificates = new TestCertificates();
        await using var server = await FakePatroniServer.StartAsync(certificates.ServerCertificate);
        using var client = CreateClient([server.Url], new TlsOptions
        {
            CaCert = certificates.CaCertFile,
            ClientCert = certificates.ClientCertFile,
            ClientKey = certificates.ClientKeyFile,
        });

        var result = await client.GetClusterAsync(CancellationToken.None);

        Assert.True(result.IsSuccess, result.Error);
        Assert.StartsWith("https://", result.Source);
        Assert.Equal(certificates.ClientCertificate.Thumbprint, server.LastClientCertificate?.Thumbprint);
    }

    [Fact]
    public async Task GetClusterAsync_TlsWithoutCaCert_IsRejected()
    {
        using var certificates = new TestCertificates();
        await using var server = await FakePatroniServer.StartAsync(certificates.ServerCertificate);
        using var client = CreateClient([server.Url]);

        var result = await client.GetClusterAsync(CancellationToken.None);

        Assert.False(result.IsSuccess);
        Assert.Contains("SSL", result.Error);
        Assert.Equal(0, server.Requests);
    }

    [Fact]
    public async Task GetClusterAsync_TlsSkipVerify_AcceptsUntrustedCertificate()
    {
        using var certificates = new TestCertificates();
        await using var server = await FakePatroniServer.StartAsync(certificates.ServerCertificate);
        using var client = CreateClient([server.Url], new TlsOptions { SkipVerify = true });

        var result = await client.GetClusterAsync(CancellationToken.None);

        Assert.True(result.IsSuccess, result.Error);
        Assert.Null(server.LastClientCertificate);
    }

    [Fact]
    public void Constructor_MissingCaFile_Throws()
    {
        Assert.ThrowsAny<Exception>(() => CreateClient(["https://127.0.0.1:1"], new TlsOptions { CaCert = "/nonexistent/ca.pem" }));
    }

    [Fact]
    public async Task GetClusterAsync_Retired_RefusesNewPolls()
    {
        await using var server = await FakePatroniServer.StartAsync();
        var client = CreateClient([server.Url]);
        client.Retire();

        var result = await client.GetClusterAsync(CancellationToken.None);

        Assert.False(result.IsSuccess);
        Assert.Equal(0, server.Requests);
    }
}
