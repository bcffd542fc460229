using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using PatroniYarp.Admin;
using PatroniYarp.Patroni;
using PatroniYarp.Tests.Configuration;

namespace PatroniYarp.Tests.Admin;

/// <summary>
/// The admin API on real Kestrel (limits are Kestrel's): request limits, methods, what may change state, the
/// /update_clusters rate limit, the bearer token, and the warning for an exposed listener; and the health-check API
/// beside it (same listener, and the patroniglue frontend): unknown paths, methods and limits.
/// </summary>
public sealed class AdminSecurityTests : IAsyncDisposable
{
    private const string Token = "s3cret-admin-token";

    private static readonly string[] AdminPaths = ["/", "/update_clusters", "/clusters", "/connections"];

    private readonly List<IAsyncDisposable> _hosts = [];

    public async ValueTask DisposeAsync()
    {
        foreach (var host in _hosts)
        {
            await host.DisposeAsync();
        }
    }

    [Fact]
    public async Task Request_HeadersOverLimit_Rejected431()
    {
        var admin = Start();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/");
        request.Headers.Add("X-Padding", new string('x', 9 * 1024));

        using var response = await admin.Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.RequestHeaderFieldsTooLarge, response.StatusCode);
    }

    [Fact]
    public async Task Request_TooManyHeaders_Rejected431()
    {
        var admin = Start();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/");
        for (var i = 0; i < 40; i++)
        {
            request.Headers.Add($"X-H{i}", "v");
        }

        using var response = await admin.Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.RequestHeaderFieldsTooLarge, response.StatusCode);
    }

    [Fact]
    public async Task Request_LineOverLimit_Rejected414()
    {
        var admin = Start();

        using var response = await admin.Client.GetAsync("/" + new string('a', 3 * 1024));

        Assert.Equal(HttpStatusCode.RequestUriTooLong, response.StatusCode);
    }

    [Fact]
    public async Task Request_BodyAnnouncedOverLimit_AnsweredThenConnectionClosedWithoutReadingTheBody()
    {
        var admin = Start();
        using var socket = new TcpClient();
        await socket.ConnectAsync(IPAddress.Loopback, admin.Port);
        var stream = socket.GetStream();
        // 100 MB announced, a few bytes sent: the server must not wait for (or buffer) the rest.
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            "POST /update_clusters HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\nabc"));

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var answer = await ReadToEndAsync(stream, timeout.Token);

        Assert.Matches("^HTTP/1.1 (405|413) ", answer);
        Assert.Equal(0, admin.Refresher.Calls);
    }

    [Fact]
    public async Task Send_WrongMethodOnEveryAdminPath_Returns405AndChangesNothing()
    {
        var admin = Start();
        foreach (var path in AdminPaths)
        {
            foreach (var method in new[] { "POST", "PUT", "DELETE", "PATCH" })
            {
                using var response = await admin.Client.SendAsync(new HttpRequestMessage(new HttpMethod(method), path));

                Assert.True(HttpStatusCode.MethodNotAllowed == response.StatusCode, $"{method} {path}: {response.StatusCode}");
            }
        }
        Assert.Equal(0, admin.Refresher.Calls);
    }

    [Theory]
    [InlineData("/nope")]
    [InlineData("/update_clusters/now")]
    [InlineData("/../etc/passwd")]
    [InlineData("/clusters.json")]
    public async Task Get_UnknownPath_Returns404(string path)
    {
        var admin = Start();

        using var response = await admin.Client.GetAsync(path);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public async Task Get_ReadOnlyPaths_NeverPoll_OnlyUpdateClustersDoes()
    {
        var admin = Start();
        foreach (var path in new[] { "/", "/clusters", "/connections" })
        {
            for (var i = 0; i < 5; i++)
            {
                (await admin.Client.GetAsync(path)).EnsureSuccessStatusCode();
            }
        }
        Assert.Equal(0, admin.Refresher.Calls);

        (await admin.Client.GetAsync("/update_clusters")).EnsureSuccessStatusCode();

        Assert.Equal(1, admin.Refresher.Calls);
    }

    [Fact]
    public async Task GetUpdateClusters_Burst_BeyondOnePerSecondAndSmallQueueAnswers429()
    {
        var admin = Start();

        var responses = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => admin.Client.GetAsync("/update_clusters")));

        var statuses = responses.Select(r => r.StatusCode).ToList();
        Assert.All(statuses, s => Assert.True(s is HttpStatusCode.OK or HttpStatusCode.TooManyRequests, s.ToString()));
        // One permit per window plus a queue of two; a burst may straddle one window boundary.
        Assert.InRange(statuses.Count(s => s == HttpStatusCode.OK), 1, 5);
        Assert.Equal(statuses.Count(s => s == HttpStatusCode.OK), admin.Refresher.Calls);
    }

    [Fact]
    public async Task Token_Set_RequestsWithoutOrWithWrongTokenAre401_RightTokenPasses()
    {
        var admin = Start(token: Token);
        foreach (var path in AdminPaths)
        {
            using var none = await admin.Client.GetAsync(path);
            Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
            Assert.Equal("Bearer", none.Headers.WwwAuthenticate.Single().Scheme);

            using var wrong = await SendAsync(admin, path, new AuthenticationHeaderValue("Bearer", Token + "x"));
            Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);

            using var basic = await SendAsync(admin, path, new AuthenticationHeaderValue("Basic", Token));
            Assert.Equal(HttpStatusCode.Unauthorized, basic.StatusCode);
        }
        Assert.Equal(0, admin.Refresher.Calls);

        using var right = await SendAsync(admin, "/clusters", new AuthenticationHeaderValue("Bearer", Token));
        Assert.Equal(HttpStatusCode.OK, right.StatusCode);
    }

    [Fact]
    public async Task Token_Set_MetricsNeedIt_HealthzAnswersProbesWithTheStatusOnly()
    {
        var admin = Start(token: Token);

        using var none = await admin.Client.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
        using var right = await SendAsync(admin, "/metrics", new AuthenticationHeaderValue("Bearer", Token));
        Assert.Equal(HttpStatusCode.OK, right.StatusCode);
        // Probes (Docker HEALTHCHECK, kubelet) carry no token and learn only ready or not; the token shows the checks.
        using var probe = await admin.Client.GetAsync("/healthz/live");
        Assert.Equal(HttpStatusCode.OK, probe.StatusCode);
        Assert.DoesNotContain("checks", await probe.Content.ReadAsStringAsync());
        using var detailed = await SendAsync(admin, "/healthz/live", new AuthenticationHeaderValue("Bearer", Token));
        Assert.Contains("\"configuration\"", await detailed.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Token_Set_UnauthenticatedFloodDoesNotUseUpUpdateClustersPermits()
    {
        var admin = Start(token: Token);
        for (var i = 0; i < 10; i++)
        {
            using var rejected = await admin.Client.GetAsync("/update_clusters");
            Assert.Equal(HttpStatusCode.Unauthorized, rejected.StatusCode);
        }

        using var response = await SendAsync(admin, "/update_clusters", new AuthenticationHeaderValue("Bearer", Token));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(1, admin.Refresher.Calls);
    }

    [Theory]
    [InlineData("Bearer " + Token, true)]
    [InlineData("bearer " + Token, true)]
    [InlineData("Bearer  " + Token + " ", true)]
    [InlineData("Bearer " + Token + "x", false)]
    [InlineData("Bearer s", false)]
    [InlineData("Bearer ", false)]
    [InlineData(Token, false)]
    [InlineData("", false)]
    public void IsAuthorized_ComparesTheBearerToken(string authorization, bool expected)
    {
        Assert.Equal(expected, AdminTokenMiddleware.IsAuthorized(authorization, Token));
    }

    [Theory]
    [InlineData("0.0.0.0:8009", null, true)]
    [InlineData("10.1.2.3:8009", null, true)]
    [InlineData("0.0.0.0:8009", Token, false)]
    [InlineData("127.0.0.1:8009", null, false)]
    [InlineData("[::1]:8009", null, false)]
    [InlineData("localhost:8009", null, false)]
    public async Task StartUp_AdminListenerBeyondLoopbackWithoutToken_Warns(string listen, string? token, bool warns)
    {
        var logs = new CapturingLoggerProvider();
        // In-memory server: nothing is bound, only the start-up check runs.
        var factory = new AdminFactory(listen, token, kestrel: false, logs);
        _hosts.Add(factory);

        (await factory.CreateClient().GetAsync("/")).Dispose();

        Assert.Equal(warns, logs.Entries.Any(e => e.Level == LogLevel.Warning && e.Message.Contains("admin_token is not set")));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task HealthChecks_UnknownPathWrongMethodAndOversizedHeaders_404_405_431(bool onFrontend)
    {
        var frontend = FreeLoopbackPort();
        var admin = Start(extra: HealthSettings(frontend));
        using var client = onFrontend ? new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{frontend}") } : null;
        var http = client ?? admin.Client;

        using var unknown = await http.GetAsync("/primaryx");
        using var wrongMethod = await http.PostAsync("/primary", null);
        using var deleteReplica = await http.DeleteAsync("/replica");
        using var oversized = new HttpRequestMessage(HttpMethod.Get, "/primary");
        oversized.Headers.Add("X-Padding", new string('x', 9 * 1024));
        using var tooLarge = await http.SendAsync(oversized);

        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, wrongMethod.StatusCode);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, deleteReplica.StatusCode);
        Assert.Equal(HttpStatusCode.RequestHeaderFieldsTooLarge, tooLarge.StatusCode);
    }

    [Fact]
    public async Task Frontend_AdminPathsAre404WhateverTheToken_AndDoNotUseUpUpdateClustersPermits()
    {
        var frontend = FreeLoopbackPort();
        var admin = Start(token: Token, extra: HealthSettings(frontend));
        using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{frontend}") };
        for (var i = 0; i < 10; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/update_clusters");
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Token);
            using var response = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        }

        using var onAdmin = await SendAsync(admin, "/update_clusters", new AuthenticationHeaderValue("Bearer", Token));

        Assert.Equal(HttpStatusCode.OK, onAdmin.StatusCode);
        Assert.Equal(1, admin.Refresher.Calls);
    }

    /// <summary>patroniglue keys: a sidecar backend nobody answers on, and a frontend listener.</summary>
    private static Dictionary<string, string> HealthSettings(int frontendPort) => new()
    {
        ["backend:host"] = "127.0.0.1",
        ["backend:port"] = FreeLoopbackPort().ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["backend:timeout"] = "0.5",
        ["frontend:host"] = "127.0.0.1",
        ["frontend:port"] = frontendPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    private static Task<HttpResponseMessage> SendAsync(RunningAdmin admin, string path, AuthenticationHeaderValue authorization)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Authorization = authorization;
        return admin.Client.SendAsync(request);
    }

    private static async Task<string> ReadToEndAsync(NetworkStream stream, CancellationToken cancellationToken)
    {
        var buffer = new byte[4096];
        var text = new StringBuilder();
        int read;
        while ((read = await stream.ReadAsync(buffer, cancellationToken)) > 0)
        {
            text.Append(Encoding.ASCII.GetString(buffer, 0, read));
        }
        return text.ToString();
    }

    private RunningAdmin Start(string? token = null, IReadOnlyDictionary<string, string>? extra = null)
    {
        var port = FreeLoopbackPort();
        var factory = new AdminFactory($"127.0.0.1:{port}", token, kestrel: true, logs: null, extra);
        _hosts.Add(factory);
        factory.StartServer();
        var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(20) };
        return new RunningAdmin(port, client, factory.Refresher);
    }

    private static int FreeLoopbackPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private sealed record RunningAdmin(int Port, HttpClient Client, CountingRefresher Refresher);

    internal sealed class CountingRefresher : IClusterRefresher
    {
        private int _calls;

        public int Calls => Volatile.Read(ref _calls);

        public Task<ClusterRefreshResult> RefreshAllAsync(CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _calls);
            return Task.FromResult(new ClusterRefreshResult(["main"], new Dictionary<string, string>()));
        }

        public void RequestPoll(string cluster)
        {
        }
    }

    private sealed class AdminFactory : WebApplicationFactory<Program>
    {
        private readonly string _listen;
        private readonly string? _token;
        private readonly CapturingLoggerProvider? _logs;
        private readonly IReadOnlyDictionary<string, string> _extra;

        public AdminFactory(string listen, string? token, bool kestrel, CapturingLoggerProvider? logs, IReadOnlyDictionary<string, string>? extra = null)
        {
            _listen = listen;
            _token = token;
            _logs = logs;
            _extra = extra ?? new Dictionary<string, string>();
            if (kestrel)
            {
                UseKestrel();
            }
        }

        public CountingRefresher Refresher { get; } = new();

        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            builder.UseSetting("listen_address", _listen);
            builder.UseSetting("clusters:main:hosts:0", "http://127.0.0.1:8001");
            builder.UseSetting("clusters:main:ports:master:listen", $"127.0.0.1:{FreeLoopbackPort()}");
            builder.UseSetting("clusters:main:ports:master:roles:0", "leader");
            if (_token is not null)
            {
                builder.UseSetting("admin_token", _token);
            }
            foreach (var (key, value) in _extra)
            {
                builder.UseSetting(key, value);
            }
            if (_logs is not null)
            {
                builder.ConfigureLogging(logging => logging.AddProvider(_logs));
            }
            builder.ConfigureTestServices(services =>
            {
                services.RemoveAll<IClusterRefresher>();
                services.AddSingleton<IClusterRefresher>(Refresher);
                foreach (var service in services.Where(AdminApiTests.IsPatroniYarpHostedService).ToList())
                {
                    services.Remove(service);
                }
            });
        }
    }
}
