using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace PatroniYarp.Tests.Patroni;

/// <summary>
/// A loopback stand-in for one Patroni REST API: answers GET /cluster with whatever the test sets, and GET /primary as
/// a running primary (the members of <see cref="WithLeader"/> have this server as their api_url).
/// </summary>
internal sealed class FakePatroniServer : IAsyncDisposable
{
    public const string RunningPrimaryJson = """{"state":"running","role":"master","timeline":2}""";

    private readonly WebApplication _app;
    private int _requests;
    private int _primaryRequests;

    private FakePatroniServer(WebApplication app, string url)
    {
        _app = app;
        Url = url;
        ClusterJson = WithLeader("pg1");
    }

    public string Url { get; }

    /// <summary>Answers requests; by default 200 with <see cref="ClusterJson"/>.</summary>
    public Func<HttpContext, Task>? Handler { get; set; }

    public string ClusterJson { get; set; }

    /// <summary>Answers GET /primary; by default <see cref="PrimaryStatus"/> with <see cref="PrimaryJson"/>.</summary>
    public Func<HttpContext, Task>? PrimaryHandler { get; set; }

    public string PrimaryJson { get; set; } = RunningPrimaryJson;

    public int PrimaryStatus { get; set; } = StatusCodes.Status200OK;

    /// <summary>Requests other than the GET /primary answered as a running primary (the /cluster polls).</summary>
    public int Requests => Volatile.Read(ref _requests);

    public int PrimaryRequests => Volatile.Read(ref _primaryRequests);

    public X509Certificate2? LastClientCertificate { get; private set; }

    /// <param name="apiUrl">The members' api_url; none when null (a leader that cannot be confirmed).</param>
    public static string ClusterWithLeader(string leader, string replica = "pg2", string? apiUrl = null)
    {
        var api = apiUrl is null ? "" : $",\"api_url\":\"{apiUrl}\"";
        return $$"""
            {"members":[
              {"name":"{{leader}}","role":"leader","state":"running","host":"127.0.0.1","port":5432,"timeline":1{{api}}},
              {"name":"{{replica}}","role":"replica","state":"streaming","host":"127.0.0.1","port":5433,"timeline":1,"lag":0{{api}}}]}
            """;
    }

    /// <summary>A /cluster answer whose members' API is this server.</summary>
    public string WithLeader(string leader, string replica = "pg2") => ClusterWithLeader(leader, replica, $"{Url}/patroni");

    public static async Task<FakePatroniServer> StartAsync(X509Certificate2? serverCertificate = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen =>
        {
            if (serverCertificate is not null)
            {
                listen.UseHttps(https =>
                {
                    https.ServerCertificate = serverCertificate;
                    https.ClientCertificateMode = ClientCertificateMode.AllowCertificate;
                    https.AllowAnyClientCertificate();
                });
            }
        }));
        var app = builder.Build();
        FakePatroniServer? server = null;
        app.Run(context => server!.HandleAsync(context));
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.Single();
        server = new FakePatroniServer(app, address);
        return server;
    }

    /// <summary>A loopback port with nothing listening: connects are refused at once.</summary>
    public static string ClosedPortUrl()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return $"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}";
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private Task HandleAsync(HttpContext context)
    {
        LastClientCertificate = context.Connection.ClientCertificate;
        // A test that sets only Handler uses this server as a plain HTTP backend (the health checks): it gets /primary too.
        if (context.Request.Path == "/primary" && (PrimaryHandler is not null || Handler is null))
        {
            Interlocked.Increment(ref _primaryRequests);
            if (PrimaryHandler is { } primary)
            {
                return primary(context);
            }
            context.Response.StatusCode = PrimaryStatus;
            context.Response.ContentType = "application/json";
            return context.Response.WriteAsync(PrimaryJson);
        }
        Interlocked.Increment(ref _requests);
        if (Handler is { } handler)
        {
            return handler(context);
        }
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(ClusterJson);
    }
}

/// <summary>A Patroni API that accepts connections and never answers (the kernel completes the handshake).</summary>
internal sealed class FrozenServer : IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);

    public FrozenServer() => _listener.Start(backlog: 16);

    public string Url => $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";

    public void Dispose() => _listener.Dispose();
}
