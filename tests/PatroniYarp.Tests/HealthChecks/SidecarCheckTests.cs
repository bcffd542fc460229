using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using PatroniYarp.HealthChecks;
using PatroniYarp.Tests.Patroni;
using static PatroniYarp.Tests.Routing.RoutingTestData;

namespace PatroniYarp.Tests.HealthChecks;

/// <summary>The sidecar checks through the real Program (TestServer), against a loopback fake Patroni that counts calls.</summary>
[Collection(HybridCacheCollection.Name)]
public sealed class SidecarCheckTests : IAsyncLifetime
{
    private const string PrimaryBody = """{"state": "running", "role": "primary"}""";

    private FakePatroniServer _patroni = null!;
    private readonly SeenRequests _seen = new();

    public async Task InitializeAsync()
    {
        _patroni = await FakePatroniServer.StartAsync();
        _patroni.Handler = context =>
        {
            _seen.Add(context.Request);
            context.Response.StatusCode = context.Request.Path == "/primary" ? 200 : 503;
            context.Response.ContentType = "application/json";
            return context.Response.WriteAsync(PrimaryBody);
        };
    }

    public async Task DisposeAsync() => await _patroni.DisposeAsync();

    [Fact]
    public async Task Get_ConcurrentIdenticalRequests_ExactlyOneCallToPatroni()
    {
        const int clients = 16;
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _patroni.Handler = async context =>
        {
            _seen.Add(context.Request);
            await release.Task;
            await context.Response.WriteAsync(PrimaryBody);
        };
        using var joins = new StampedeJoins();
        await using var host = SidecarHost.Start(_patroni.Url);
        var client = host.CreateClient();

        var responses = Enumerable.Range(0, clients).Select(_ => client.GetAsync("/primary")).ToArray();
        // Every other request has joined the one call under way before Patroni answers.
        await Eventually.TrueAsync(() => _patroni.Requests == 1 && joins.Count == clients - 1, "all requests wait for one call");
        release.SetResult();

        foreach (var response in await Task.WhenAll(responses))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(PrimaryBody, await response.Content.ReadAsStringAsync());
        }
        Assert.Equal(1, _patroni.Requests);
    }

    [Fact]
    public async Task Get_RepeatedWithinTtl_ServedFromCache()
    {
        await using var host = SidecarHost.Start(_patroni.Url, ttl: 60);
        var client = host.CreateClient();

        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/primary")).StatusCode);
        }
        Assert.Equal(1, _patroni.Requests);
    }

    [Fact]
    public async Task Get_TtlZero_EveryRequestAsksPatroni()
    {
        await using var host = SidecarHost.Start(_patroni.Url, ttl: 0);
        var client = host.CreateClient();

        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/primary")).StatusCode);
        }
        Assert.Equal(3, _patroni.Requests);
    }

    [Fact]
    public async Task Get_AfterTtl_AsksPatroniAgain()
    {
        await using var host = SidecarHost.Start(_patroni.Url, ttl: 0.2);
        var client = host.CreateClient();

        await client.GetAsync("/primary");
        await WaitUntilAsync(async () =>
        {
            await client.GetAsync("/primary");
            return _patroni.Requests >= 2;
        }, "the cached answer expires and Patroni is asked again");
    }

    [Fact]
    public async Task Get_QueryStrings_AreDistinctKeysAndPassedOn()
    {
        await using var host = SidecarHost.Start(_patroni.Url);
        var client = host.CreateClient();

        foreach (var path in new[] { "/replica", "/replica?lag=1MB", "/replica?lag=2MB", "/replica?lag=1MB", "/replica?tag_dc=east", "/replica" })
        {
            await client.GetAsync(path);
        }

        Assert.Equal(["GET /replica", "GET /replica?lag=1MB", "GET /replica?lag=2MB", "GET /replica?tag_dc=east"], _seen.All);
    }

    [Fact]
    public async Task Get_Patroni503_PassedOnAndCachedWithoutBackendHeader()
    {
        await using var host = SidecarHost.Start(_patroni.Url);
        var client = host.CreateClient();

        var first = await client.GetAsync("/replica");
        var second = await client.GetAsync("/replica");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, first.StatusCode);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, second.StatusCode);
        Assert.False(first.Headers.Contains(CheckAnswer.BackendHeader));
        Assert.Equal(PrimaryBody, await second.Content.ReadAsStringAsync());
        Assert.Equal(1, _patroni.Requests);
    }

    [Theory]
    [InlineData("HEAD")]
    [InlineData("OPTIONS")]
    public async Task HeadAndOptions_StatusWithoutBody_SharingTheCachedGetAnswer(string method)
    {
        await using var host = SidecarHost.Start(_patroni.Url);
        var client = host.CreateClient();

        var primary = await client.SendAsync(new HttpRequestMessage(new HttpMethod(method), "/primary"));
        var replica = await client.SendAsync(new HttpRequestMessage(new HttpMethod(method), "/replica"));
        var get = await client.GetAsync("/primary");

        Assert.Equal(HttpStatusCode.OK, primary.StatusCode);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, replica.StatusCode);
        Assert.Empty(await primary.Content.ReadAsByteArrayAsync());
        Assert.Empty(await replica.Content.ReadAsByteArrayAsync());
        Assert.Equal(PrimaryBody, await get.Content.ReadAsStringAsync());
        // Patroni is asked with GET, once per path, whatever the client's method.
        Assert.Equal(["GET /primary", "GET /replica"], _seen.All);
    }

    [Fact]
    public async Task Get_EveryCheckRoute_ForwardedToTheSamePathOnPatroni()
    {
        await using var host = SidecarHost.Start(_patroni.Url);
        var client = host.CreateClient();

        foreach (var check in PatroniChecks.All)
        {
            await client.GetAsync("/" + check);
        }

        Assert.Equal(PatroniChecks.All.Select(c => $"GET /{c}"), _seen.All);
    }

    [Fact]
    public async Task Get_FrozenPatroni_503TimeoutWithinTimeout_OneCallOnly()
    {
        _patroni.Handler = async context =>
        {
            _seen.Add(context.Request);
            await Task.Delay(Timeout.Infinite, context.RequestAborted);
        };
        await using var host = SidecarHost.Start(_patroni.Url, ttl: 60, timeout: 0.3);
        var client = host.CreateClient();

        var concurrent = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => client.GetAsync("/primary")));
        var later = await client.GetAsync("/primary");

        foreach (var response in concurrent.Append(later))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            Assert.Equal(CheckAnswer.Timeout, Assert.Single(response.Headers.GetValues(CheckAnswer.BackendHeader)));
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Contains("did not answer within 0.3 s", body.RootElement.GetProperty("error").GetString());
            Assert.Equal("timeout", body.RootElement.GetProperty("backend").GetString());
        }
        // The timed-out answer is cached for the ttl like any other: a frozen Patroni is not asked again meanwhile.
        Assert.Equal(1, _patroni.Requests);
    }

    [Fact]
    public async Task Get_PatroniAcceptsAndNeverAnswers_503Timeout()
    {
        using var frozen = new FrozenServer();
        await using var host = SidecarHost.Start(frozen.Url, timeout: 0.3);

        var response = await host.CreateClient().GetAsync("/primary");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(CheckAnswer.Timeout, Assert.Single(response.Headers.GetValues(CheckAnswer.BackendHeader)));
    }

    [Fact]
    public async Task Get_PatroniRefusesConnections_503Error()
    {
        await using var host = SidecarHost.Start(FakePatroniServer.ClosedPortUrl());

        var response = await host.CreateClient().GetAsync("/primary");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(CheckAnswer.Error, Assert.Single(response.Headers.GetValues(CheckAnswer.BackendHeader)));
        Assert.Contains("failed", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Get_StaleIfError_ServesLastGoodAnswerWhenPatroniFails()
    {
        await using var host = SidecarHost.Start(_patroni.Url, ttl: 0.1, timeout: 0.3, staleIfError: 60);
        var client = host.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/primary")).StatusCode);

        _patroni.Handler = context => Task.Delay(Timeout.Infinite, context.RequestAborted);

        HttpResponseMessage? stale = null;
        await WaitUntilAsync(async () =>
        {
            stale = await client.GetAsync("/primary");
            return stale.Headers.Contains(CheckAnswer.BackendHeader);
        }, "the cached answer expires and Patroni fails");
        Assert.Equal(HttpStatusCode.OK, stale!.StatusCode);
        Assert.Equal(CheckAnswer.Stale, Assert.Single(stale.Headers.GetValues(CheckAnswer.BackendHeader)));
        Assert.Equal(PrimaryBody, await stale.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Get_StaleIfErrorOff_PatroniFailing_503NotTheLastGoodAnswer()
    {
        await using var host = SidecarHost.Start(_patroni.Url, ttl: 0.1, timeout: 0.3);
        var client = host.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/primary")).StatusCode);

        _patroni.Handler = context => Task.Delay(Timeout.Infinite, context.RequestAborted);

        await WaitUntilAsync(async () => (await client.GetAsync("/primary")).StatusCode == HttpStatusCode.ServiceUnavailable,
            "a 503 once the cached 200 has expired");
    }

    [Fact]
    public async Task Get_HttpsBackendWithInsecure_Answers()
    {
        using var certificates = new TestCertificates();
        await using var https = await FakePatroniServer.StartAsync(certificates.ServerCertificate);
        https.Handler = context => context.Response.WriteAsync(PrimaryBody);

        await using var insecure = SidecarHost.Start(https.Url, insecure: true);
        await using var checking = SidecarHost.Start(https.Url, insecure: false);

        Assert.Equal(HttpStatusCode.OK, (await insecure.CreateClient().GetAsync("/primary")).StatusCode);
        // Without insecure, the test CA is not trusted: no answer from Patroni, and a 503 that says so.
        var refused = await checking.CreateClient().GetAsync("/primary");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal(CheckAnswer.Error, Assert.Single(refused.Headers.GetValues(CheckAnswer.BackendHeader)));
    }

    [Theory]
    [InlineData("POST", "/primary", HttpStatusCode.MethodNotAllowed)]
    [InlineData("GET", "/nope", HttpStatusCode.NotFound)]
    [InlineData("GET", "/healthz", HttpStatusCode.OK)]
    public async Task Send_OtherPathsAndMethods(string method, string path, HttpStatusCode expected)
    {
        await using var host = SidecarHost.Start(_patroni.Url);

        var response = await host.CreateClient().SendAsync(new HttpRequestMessage(new HttpMethod(method), path));

        Assert.Equal(expected, response.StatusCode);
        Assert.Equal(0, _patroni.Requests);
    }
}
