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

/// <summary>A loopback stand-in for one Patroni REST API: answers GET /cluster with whatever the test sets.</summary>
internal sealed class FakePatroniServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _requests;

    private FakePatroniServer(WebApplication app, string url)
    {
        _app = app;
        Url = url;
    }

    public string Url { get; }

    /// <summary>Answers requests; by default 200 with <see cref="ClusterJson"/>.</summary>
    public Func<HttpContext, Task>? Handler { get; set; }

    public string ClusterJson { get; set; } = ClusterWithLeader("pg1");

    public int Requests => Volatile.Read(ref _requests);

    public X509Certificate2? LastClientCertificate { get; private set; }

    public static string ClusterWithLeader(string leader, string replica = "pg2") => $$"""
        {"members":[
          {"name":"{{leader}}","role":"leader","state":"running","host":"127.0.0.1","port":5432,"timeline":1},
          {"name":"{{replica}}","role":"replica","state":"streaming","host":"127.0.0.1","port":5433,"timeline":1,"lag":0}]}
        """;

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
        Interlocked.Increment(ref _requests);
        LastClientCertificate = context.Connection.ClientCertificate;
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
