using System.Net.Security;
using System.Security.Authentication;
using Microsoft.AspNetCore.Server.Kestrel;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using PatroniYarp.Configuration;
using PatroniYarp.Diagnostics;
using PatroniYarp.HealthChecks;

namespace PatroniYarp.Tcp;

/// <summary>
/// Keeps Kestrel's endpoints equal to the configuration: the admin API's HTTP endpoint, the patroniglue frontend's
/// HTTP(S) endpoint and one raw TCP endpoint per configured port. Kestrel has no API to add endpoints at run time, but its configuration loader (with
/// reloadOnChange) adds, removes and rebinds endpoints when its configuration changes; this class owns that
/// configuration and registers, by endpoint name, the callback that ends each TCP endpoint's pipeline in the
/// connection handler before it raises the reload.
/// </summary>
internal sealed partial class TcpEndpointManager : IDisposable
{
    public const string AdminEndpointName = "admin";
    public const string FrontendEndpointName = "frontend";

    private readonly Lock _lock = new();
    private readonly KestrelEndpointConfigurationProvider _provider = new();
    private readonly IConfigurationRoot _configuration;
    private readonly SessionRegistry _registry;
    private readonly ProxyMetrics _metrics;
    private readonly TcpConnectionHandler _handler;
    private readonly SpareBackends _spares;
    private readonly ILogger<TcpEndpointManager> _logger;
    private readonly IDisposable? _subscription;
    private Dictionary<string, TcpPortEndpoint> _endpoints = new(StringComparer.OrdinalIgnoreCase);
    private volatile Dictionary<int, TcpPortEndpoint?> _tcpPorts = [];
    private KestrelConfigurationLoader? _loader;
    private volatile FrontendTls? _frontendTls;

    public TcpEndpointManager(IOptionsMonitor<ProxyOptions> options, SessionRegistry registry, TcpConnectionHandler handler,
        SpareBackends spares, ProxyMetrics metrics, ILogger<TcpEndpointManager> logger)
    {
        _spares = spares;
        _registry = registry;
        _metrics = metrics;
        _handler = handler;
        _logger = logger;
        _configuration = new ConfigurationRoot([_provider]);
        Apply(options.CurrentValue);
        // The options monitor only reports valid configurations; an invalid reload keeps the endpoints as they are.
        _subscription = options.OnChange(Apply);
    }

    /// <summary>
    /// Makes Kestrel read its endpoints from this manager (this replaces the default "Kestrel" section loader).
    /// Called once, when Kestrel's options are built.
    /// </summary>
    public void AttachTo(KestrelServerOptions kestrel)
    {
        lock (_lock)
        {
            _loader = kestrel.Configure(_configuration, reloadOnChange: true);
            _loader.Endpoint(FrontendEndpointName, ConfigureFrontend);
            foreach (var endpoint in _endpoints.Values)
            {
                RegisterPipeline(_loader, endpoint);
            }
        }
    }

    /// <summary>
    /// Whether a port number belongs to a configured TCP port rather than the admin API (their listen addresses never
    /// share a port). <see cref="TcpSocketListenerFactory"/> binds those; Kestrel's own transport binds the rest.
    /// </summary>
    public bool IsTcpPort(int port) => _tcpPorts.ContainsKey(port);

    /// <summary>
    /// A spare backend for a client just accepted on <paramref name="port"/> (see <see cref="SpareBackends"/>); none when
    /// two configured ports share that number on different addresses, as only Kestrel's pipeline tells them apart.
    /// </summary>
    public SpareBackend? TakeSpare(int port) =>
        _tcpPorts.TryGetValue(port, out var endpoint) && endpoint is not null ? _spares.TryTake(endpoint) : null;

    private void Apply(ProxyOptions options)
    {
        lock (_lock)
        {
            var data = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
            // The validator has accepted every address by now; an unparsable one is skipped, not guessed.
            if (options.AdminListenerEnabled && ListenAddress.TryParse(options.EffectiveListenAddress, out var admin))
            {
                data[UrlKey(AdminEndpointName)] = admin.ToKestrelUrl();
            }
            AddFrontend(options.Frontend, data);

            var next = new Dictionary<string, TcpPortEndpoint>(StringComparer.OrdinalIgnoreCase);
            var tcpPorts = new Dictionary<int, TcpPortEndpoint?>();
            var spares = new List<(TcpPortEndpoint, int, double)>();
            foreach (var (clusterName, cluster) in options.Clusters)
            {
                foreach (var (portName, port) in cluster.Ports)
                {
                    var name = TcpPortEndpoint.EndpointNameFor(clusterName, portName);
                    if (!ListenAddress.TryParse(port.Listen, out var listen))
                    {
                        continue;
                    }
                    var url = listen.ToKestrelUrl();

                    if (_endpoints.TryGetValue(name, out var current) && current.Url == url)
                    {
                        // Unchanged listener: Kestrel keeps it bound and its sessions keep flowing.
                        next[name] = current;
                    }
                    else
                    {
                        var endpoint = new TcpPortEndpoint(clusterName, portName, url);
                        next[name] = endpoint;
                        if (_loader is not null)
                        {
                            RegisterPipeline(_loader, endpoint);
                        }
                        Log.PortListening(_logger, endpoint.ClusterId, url);
                    }
                    data[UrlKey(name)] = url;
                    tcpPorts[listen.Port] = tcpPorts.ContainsKey(listen.Port) ? null : next[name];
                    spares.Add((next[name], port.Preconnect, port.ConnectTimeout));
                }
            }

            foreach (var (name, old) in _endpoints)
            {
                if (next.TryGetValue(name, out var kept) && ReferenceEquals(kept, old))
                {
                    continue;
                }

                // Kestrel would ask these connections to close and abort them after 5 s; close them now, and refuse any
                // connection the old listener still accepts before Kestrel stops it.
                old.Retire();
                var reason = next.ContainsKey(name) ? "port rebound to a new listen address" : SessionRegistry.ReasonPortRemoved;
                _metrics.SessionsClosed(_registry.OpenSessions().Where(s => ReferenceEquals(s.Endpoint, old)), ProxyMetrics.Reasons.Reload);
                var closed = _registry.CloseEndpointSessions(old, reason);
                Log.PortStopped(_logger, old.ClusterId, old.Url, reason, closed);
            }

            _endpoints = next;
            // Before the reload: Kestrel asks IsTcpPort when it binds the new endpoints.
            _tcpPorts = tcpPorts;
            _spares.Configure(spares);
            _provider.Replace(data);
        }
    }

    private void RegisterPipeline(KestrelConfigurationLoader loader, TcpPortEndpoint endpoint)
    {
        // Terminal middleware: Kestrel appends its HTTP handling after it, which therefore never runs on this endpoint.
        loader.Endpoint(endpoint.EndpointName, configuration =>
            configuration.ListenOptions.Use(_ => connection => _handler.HandleAsync(connection, endpoint)));
    }

    /// <summary>
    /// patroniglue's frontend: the health checks over HTTP, or HTTPS when certfile and keyfile are set (Kestrel loads
    /// the PEM files and rebinds when they or the address change).
    /// </summary>
    private void AddFrontend(FrontendOptions? frontend, Dictionary<string, string?> data)
    {
        if (frontend is null || !ListenAddress.TryParse(frontend.ListenText, out var listen))
        {
            _frontendTls = null;
            return;
        }
        if (!frontend.IsHttps)
        {
            data[UrlKey(FrontendEndpointName)] = listen.ToKestrelUrl();
            _frontendTls = null;
            return;
        }
        data[UrlKey(FrontendEndpointName)] = $"https://{listen}";
        data[$"Endpoints:{FrontendEndpointName}:Certificate:Path"] = frontend.CertFile;
        data[$"Endpoints:{FrontendEndpointName}:Certificate:KeyPath"] = frontend.KeyFile;
        SslProtocols? minVersion = frontend.TlsMinVersion is { } min && PatroniGlueTls.TryParseMinVersion(min, out var parsed, out _) ? parsed : null;
        var suites = PatroniGlueTls.ParseCiphers(frontend.TlsCiphers, out _);
        // The validator refuses tls-ciphers where .NET cannot restrict them (Windows).
        var ciphers = suites.Count > 0 && !OperatingSystem.IsWindows() ? new CipherSuitesPolicy(suites) : null;
        _frontendTls = new FrontendTls(PatroniGlueTls.EffectiveProtocols(minVersion, suites), ciphers);
    }

    private void ConfigureFrontend(EndpointConfiguration endpoint)
    {
        // Tells the HTTP layer which listener a request came through: the admin API is not served on this one.
        endpoint.ListenOptions.Use(next => connection =>
        {
            connection.Features.Set(FrontendListenerFeature.Instance);
            return next(connection);
        });
        if (endpoint.IsHttps)
        {
            // Read at each handshake, so a reload of tls-min-version or tls-ciphers applies to the next connection.
            endpoint.HttpsOptions.OnAuthenticate = (_, ssl) =>
            {
                if (_frontendTls is { } tls)
                {
                    ssl.EnabledSslProtocols = tls.Protocols ?? ssl.EnabledSslProtocols;
                    ssl.CipherSuitesPolicy = tls.Ciphers ?? ssl.CipherSuitesPolicy;
                }
            };
        }
    }

    private sealed record FrontendTls(SslProtocols? Protocols, CipherSuitesPolicy? Ciphers);

    private static string UrlKey(string endpointName) => $"Endpoints:{endpointName}:Url";

    public void Dispose() => _subscription?.Dispose();

    private static partial class Log
    {
        [LoggerMessage(2, LogLevel.Information, "Port {Port}: listening on {Url}.")]
        public static partial void PortListening(ILogger logger, string port, string url);

        [LoggerMessage(3, LogLevel.Information, "Port {Port}: listener {Url} stopped ({Reason}); {Closed} session(s) closed.")]
        public static partial void PortStopped(ILogger logger, string port, string url, string reason, int closed);
    }
}
