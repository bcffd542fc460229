using System.Globalization;
using System.Reflection;
using System.Security.Authentication;
using Microsoft.Extensions.Configuration;
using PatroniYarp.Routing;

namespace PatroniYarp.Configuration;

/// <summary>What is wrong with a configuration (errors) and what looks like a typo (warnings), each naming file and key.</summary>
internal sealed record ProxyOptionsValidation(IReadOnlyList<string> Errors, IReadOnlyList<string> Warnings);

/// <summary>Checks bound <see cref="ProxyOptions"/> against the rules patroni_proxy leaves to chance.</summary>
internal static class ProxyOptionsValidator
{
    /// <summary>Beyond a day, a timer or delay is a mistake (and TimeSpan.FromSeconds would overflow long before).</summary>
    public const double MaxSeconds = 86_400;

    /// <summary>Spares per member and port: each is a PostgreSQL process waiting, so a few are plenty.</summary>
    public const int MaxPreconnect = 100;

    private const string ExpectedRoles = "leader, sync, async, any, standby_leader, master, primary, replica";

    private const string MinimalConfiguration = """
        a minimal configuration is:
        clusters:
          main:
            hosts: ["http://127.0.0.1:8008"]
            ports:
              master: {listen: "127.0.0.1:6432", roles: [leader]}
        or, for the health checks of one Patroni (patroniglue's config.yml):
        frontend: {host: 127.0.0.1, port: 8080}
        backend: {host: 127.0.0.1, port: 8008}
        """;

    // Sections ASP.NET itself reads, which may sensibly sit in the YAML file too.
    private static readonly string[] HostTopLevelKeys = ["Logging", "AllowedHosts", "Kestrel", "Urls"];

    private static readonly string[] TopLevelKeys = [.. KeysOf<ProxyOptions>(), .. HostTopLevelKeys];
    private static readonly string[] ClusterKeys = KeysOf<ClusterOptions>();
    private static readonly string[] TlsKeys = KeysOf<TlsOptions>();
    private static readonly string[] PortKeys = KeysOf<PortOptions>();
    private static readonly string[] FrontendKeys = KeysOf<FrontendOptions>();
    private static readonly string[] BackendKeys = KeysOf<BackendOptions>();
    private static readonly string[] CacheKeys = KeysOf<CacheOptions>();

    public static ProxyOptionsValidation Validate(ProxyOptions options, IConfigurationRoot configuration)
    {
        var context = new Context(configuration);
        ValidateTopLevel(options, context);
        WarnAboutUnknownKeys(configuration, context);
        return new ProxyOptionsValidation(context.Errors, context.Warnings);
    }

    private static void ValidateTopLevel(ProxyOptions options, Context context)
    {
        context.Seconds("cluster_update_interval", options.ClusterUpdateInterval);
        context.Seconds("api_timeout", options.ApiTimeout);

        // Every listener, admin API included, in order, so a clash names the one that came first.
        var listeners = new List<(string Key, ListenAddress Address)>();
        if (ListenAddress.TryParse(options.EffectiveListenAddress, out var admin))
        {
            // A patroniglue file alone opens no admin listener, so its default address cannot clash.
            if (options.AdminListenerEnabled)
            {
                listeners.Add(("listen_address", admin));
            }
        }
        else
        {
            context.Error("listen_address", $"'{options.ListenAddress}' is not a listen address (expected host:port, e.g. 127.0.0.1:8009, [::1]:8009, *:8009)");
        }

        if (options.Frontend is { } frontend)
        {
            ValidateFrontend(frontend, listeners, context);
        }
        if (options.Backend is { } backend)
        {
            ValidateBackend(backend, context);
        }
        ValidateCache(options.Cache, context);

        if (options.Clusters.Count == 0 && options.SidecarBackend is null)
        {
            context.Error("clusters", $"no clusters configured; {MinimalConfiguration}");
        }
        foreach (var (name, cluster) in options.Clusters)
        {
            ValidateCluster(ConfigurationPath.Combine("clusters", name), name, cluster, listeners, context);
        }
    }

    private static void ValidateCluster(string key, string name, ClusterOptions cluster, List<(string Key, ListenAddress Address)> listeners, Context context)
    {
        if (name.Contains('/'))
        {
            context.Error(key, "a cluster name must not contain '/' (it separates cluster and port in the proxy's ids)");
        }

        var hostsKey = ConfigurationPath.Combine(key, "hosts");
        if (cluster.Hosts.Count == 0)
        {
            context.Error(hostsKey, context.NotAList(hostsKey, "hosts") ?? "no hosts; list the Patroni REST API URLs, e.g. hosts: [\"http://10.0.0.1:8008\"]");
        }
        var seenHosts = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < cluster.Hosts.Count; i++)
        {
            var hostKey = ConfigurationPath.Combine(hostsKey, Index(i));
            var host = cluster.Hosts[i];
            if (!Uri.TryCreate(host, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)
            {
                context.Error(hostKey, $"'{host}' is not an http(s) URL of a Patroni REST API (e.g. http://10.0.0.1:8008)");
            }
            else if (!seenHosts.TryAdd(uri.AbsoluteUri.TrimEnd('/'), i))
            {
                context.Error(hostKey, $"duplicate host '{host}' (same as {ConfigurationKeySources.DisplayKey(ConfigurationPath.Combine(hostsKey, Index(seenHosts[uri.AbsoluteUri.TrimEnd('/')])))})");
            }
        }

        if (cluster.Tls is { } tls)
        {
            ValidateTls(ConfigurationPath.Combine(key, "tls"), tls, context);
        }

        var portsKey = ConfigurationPath.Combine(key, "ports");
        if (cluster.Ports.Count == 0)
        {
            context.Error(portsKey, "no ports; e.g. ports: {master: {listen: \"0.0.0.0:6432\", roles: [leader]}}");
        }
        foreach (var (portName, port) in cluster.Ports)
        {
            ValidatePort(ConfigurationPath.Combine(portsKey, portName), portName, port, listeners, context);
        }
    }

    private static void ValidateFrontend(FrontendOptions frontend, List<(string Key, ListenAddress Address)> listeners, Context context)
    {
        if (frontend.Port is < 1 or > 65535)
        {
            context.Error("frontend:port", $"{frontend.Port} is not a port (expected 1-65535)");
        }
        else if (!ListenAddress.TryParse(frontend.ListenText, out var address))
        {
            context.Error("frontend:host", $"'{frontend.Host}' is not an address to listen on (an IP address, a host name or *)");
        }
        else
        {
            var clash = listeners.Find(other => other.Address.ClashesWith(address));
            if (clash.Key is not null)
            {
                context.Error("frontend", $"'{address}' clashes with {ConfigurationKeySources.DisplayKey(clash.Key)} ('{clash.Address}')");
            }
            listeners.Add(("frontend", address));
        }

        context.ReadableFile("frontend:certfile", frontend.CertFile);
        context.ReadableFile("frontend:keyfile", frontend.KeyFile);
        if (string.IsNullOrEmpty(frontend.CertFile) != string.IsNullOrEmpty(frontend.KeyFile))
        {
            context.Error(string.IsNullOrEmpty(frontend.CertFile) ? "frontend:keyfile" : "frontend:certfile",
                "HTTPS needs both certfile and keyfile (PEM files); set both, or neither for HTTP");
        }
        if (!frontend.IsHttps && (frontend.TlsMinVersion is not null || frontend.TlsCiphers.Count > 0))
        {
            context.Warnings.Add($"{ConfigurationKeySources.Describe(context.Configuration, "frontend")}: tls-min-version and tls-ciphers apply to HTTPS only (set certfile and keyfile); ignored");
        }
        SslProtocols? protocols = null;
        if (frontend.TlsMinVersion is { } minVersion)
        {
            if (PatroniGlueTls.TryParseMinVersion(minVersion, out var parsed, out var versionError))
            {
                protocols = parsed;
            }
            else
            {
                context.Error("frontend:tls-min-version", versionError);
            }
        }

        if (frontend.TlsCiphers.Count == 0)
        {
            if (context.NotAList("frontend:tls-ciphers", "tls-ciphers") is { } notAList)
            {
                context.Error("frontend:tls-ciphers", notAList);
            }
        }
        else if (OperatingSystem.IsWindows())
        {
            context.Error("frontend:tls-ciphers", "cipher suites cannot be chosen on Windows (.NET has no CipherSuitesPolicy there); remove tls-ciphers");
        }
        else
        {
            var suites = PatroniGlueTls.ParseCiphers(frontend.TlsCiphers, out var unknown);
            if (unknown.Count > 0)
            {
                context.Error("frontend:tls-ciphers", $"unknown cipher suite(s): {string.Join(", ", unknown)} (expected IANA names as in Go's crypto/tls, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)");
            }
            else if (PatroniGlueTls.EffectiveProtocols(protocols, suites) == SslProtocols.None)
            {
                context.Error("frontend:tls-ciphers", $"no suite listed can be used with {frontend.TlsMinVersion} and later (TLS 1.3 has suites of its own, e.g. TLS_AES_128_GCM_SHA256)");
            }
        }
    }

    private static void ValidateBackend(BackendOptions backend, Context context)
    {
        if (string.IsNullOrWhiteSpace(backend.Host) || Uri.CheckHostName(backend.Host.Trim('[', ']')) == UriHostNameType.Unknown)
        {
            context.Error("backend:host", $"'{backend.Host}' is not a host name or IP address of a Patroni REST API");
        }
        if (backend.Port is < 1 or > 65535)
        {
            context.Error("backend:port", $"{backend.Port} is not a port (expected 1-65535)");
        }
        if (backend.Scheme is not ("http" or "https"))
        {
            context.Error("backend:scheme", $"'{backend.Scheme}' is not a scheme of the Patroni REST API (expected http or https)");
        }
        context.Seconds("backend:timeout", backend.Timeout);
    }

    private static void ValidateCache(CacheOptions cache, Context context)
    {
        // ttl 0 is allowed: no caching, concurrent calls still merged.
        if (!(cache.Ttl >= 0) || cache.Ttl > MaxSeconds)
        {
            context.Error("cache:ttl", $"must be 0 (no caching) or a positive number of seconds up to {MaxSeconds.ToString(CultureInfo.InvariantCulture)}, got {cache.Ttl.ToString(CultureInfo.InvariantCulture)}");
        }
        context.Seconds("cache:interval", cache.Interval);
        if (!(cache.StaleIfError >= 0) || cache.StaleIfError > MaxSeconds)
        {
            context.Error("cache:stale_if_error", $"must be 0 (off) or a positive number of seconds up to {MaxSeconds.ToString(CultureInfo.InvariantCulture)}, got {cache.StaleIfError.ToString(CultureInfo.InvariantCulture)}");
        }
    }

    private static void ValidateTls(string key, TlsOptions tls, Context context)
    {
        context.ReadableFile(ConfigurationPath.Combine(key, "ca_cert"), tls.CaCert);
        context.ReadableFile(ConfigurationPath.Combine(key, "client_cert"), tls.ClientCert);
        context.ReadableFile(ConfigurationPath.Combine(key, "client_key"), tls.ClientKey);
        if (!string.IsNullOrEmpty(tls.ClientCert) && string.IsNullOrEmpty(tls.ClientKey))
        {
            context.Error(ConfigurationPath.Combine(key, "client_cert"), "client_cert needs client_key (the certificate's private key file)");
        }
        if (string.IsNullOrEmpty(tls.ClientCert) && !string.IsNullOrEmpty(tls.ClientKey))
        {
            context.Error(ConfigurationPath.Combine(key, "client_key"), "client_key needs client_cert (the client certificate file)");
        }
    }

    private static void ValidatePort(string key, string name, PortOptions port, List<(string Key, ListenAddress Address)> listeners, Context context)
    {
        if (name.Contains('/'))
        {
            context.Error(key, "a port name must not contain '/' (it separates cluster and port in the proxy's ids)");
        }

        var listenKey = ConfigurationPath.Combine(key, "listen");
        if (string.IsNullOrWhiteSpace(port.Listen))
        {
            context.Error(listenKey, "no listen address (e.g. listen: \"0.0.0.0:6432\")");
        }
        else if (!ListenAddress.TryParse(port.Listen, out var address))
        {
            context.Error(listenKey, $"'{port.Listen}' is not a listen address (expected host:port with a port 1-65535, e.g. 0.0.0.0:6432, [::1]:6432, *:6432, localhost:6432)");
        }
        else
        {
            var clash = listeners.Find(other => other.Address.ClashesWith(address));
            if (clash.Key is not null)
            {
                context.Error(listenKey, $"listen address '{port.Listen}' clashes with {ConfigurationKeySources.DisplayKey(clash.Key)} ('{clash.Address}')");
            }
            listeners.Add((listenKey, address));
        }

        var rolesKey = ConfigurationPath.Combine(key, "roles");
        if (port.Roles.Count == 0)
        {
            context.Error(rolesKey, context.NotAList(rolesKey, "roles") ?? $"no roles (expected one or more of {ExpectedRoles})");
        }
        for (var i = 0; i < port.Roles.Count; i++)
        {
            if (!PortRolesExtensions.TryParse(port.Roles[i], out _))
            {
                context.Error(ConfigurationPath.Combine(rolesKey, Index(i)), $"unknown role '{port.Roles[i]}' (expected {ExpectedRoles})");
            }
        }

        if (port.HostPort is { } hostPort and (< 1 or > 65535))
        {
            context.Error(ConfigurationPath.Combine(key, "host_port"), $"{hostPort} is not a port (expected 1-65535)");
        }
        if (port.MaxLagInBytes is <= 0)
        {
            context.Error(ConfigurationPath.Combine(key, "max_lag_in_bytes"), $"must be a positive number of bytes, got {port.MaxLagInBytes}");
        }
        context.Seconds(ConfigurationPath.Combine(key, "connect_timeout"), port.ConnectTimeout);
        // 0 is allowed: no holding, a session without a member is closed at once.
        if (!(port.LeaderWaitTimeout >= 0) || port.LeaderWaitTimeout > MaxSeconds)
        {
            context.Error(ConfigurationPath.Combine(key, "leader_wait_timeout"),
                $"must be 0 (do not hold) or a positive number of seconds up to {MaxSeconds.ToString(CultureInfo.InvariantCulture)}, got {port.LeaderWaitTimeout.ToString(CultureInfo.InvariantCulture)}");
        }
        if (port.MaxWaiting < 0)
        {
            context.Error(ConfigurationPath.Combine(key, "max_waiting"),
                $"must be 0 (hold no session) or a positive number of sessions, got {port.MaxWaiting.ToString(CultureInfo.InvariantCulture)}");
        }
        if (port.Preconnect is < 0 or > MaxPreconnect)
        {
            context.Error(ConfigurationPath.Combine(key, "preconnect"),
                $"must be 0 (off) or a number of spare connections per member up to {MaxPreconnect}, got {port.Preconnect.ToString(CultureInfo.InvariantCulture)}");
        }
    }

    /// <summary>Typo protection for the YAML file(s): keys the options do not know are ignored by the binder, silently.</summary>
    private static void WarnAboutUnknownKeys(IConfigurationRoot configuration, Context context)
    {
        foreach (var yaml in configuration.Providers.OfType<YamlConfigurationProvider>())
        {
            var file = ConfigurationKeySources.NameOf(yaml);
            WarnAbout(yaml, file, parent: null, TopLevelKeys, context);
            WarnAbout(yaml, file, "frontend", FrontendKeys, context);
            WarnAbout(yaml, file, "backend", BackendKeys, context);
            WarnAbout(yaml, file, "cache", CacheKeys, context);
            foreach (var cluster in ChildKeys(yaml, "clusters"))
            {
                var clusterKey = ConfigurationPath.Combine("clusters", cluster);
                WarnAbout(yaml, file, clusterKey, ClusterKeys, context);
                WarnAbout(yaml, file, ConfigurationPath.Combine(clusterKey, "tls"), TlsKeys, context);
                foreach (var port in ChildKeys(yaml, ConfigurationPath.Combine(clusterKey, "ports")))
                {
                    WarnAbout(yaml, file, ConfigurationPath.Combine(clusterKey, "ports", port), PortKeys, context);
                }
            }
        }
    }

    private static void WarnAbout(IConfigurationProvider provider, string file, string? parent, string[] known, Context context)
    {
        foreach (var child in ChildKeys(provider, parent))
        {
            if (!known.Contains(child, StringComparer.OrdinalIgnoreCase))
            {
                var key = parent is null ? child : ConfigurationPath.Combine(parent, child);
                context.Warnings.Add($"{file}: {ConfigurationKeySources.DisplayKey(key)}: unknown key, ignored (expected one of {string.Join(", ", known)})");
            }
        }
    }

    private static IEnumerable<string> ChildKeys(IConfigurationProvider provider, string? parent) =>
        provider.GetChildKeys([], parent).Distinct(StringComparer.OrdinalIgnoreCase);

    private static string[] KeysOf<T>() =>
        [.. typeof(T).GetProperties().Select(p => p.GetCustomAttribute<ConfigurationKeyNameAttribute>()?.Name).OfType<string>()];

    private static string Index(int i) => i.ToString(CultureInfo.InvariantCulture);

    private sealed class Context(IConfigurationRoot configuration)
    {
        public IConfigurationRoot Configuration => configuration;

        public List<string> Errors { get; } = [];

        public List<string> Warnings { get; } = [];

        public void Error(string key, string message) => Errors.Add($"{ConfigurationKeySources.Describe(configuration, key)}: {message}");

        /// <summary>A list written as one text (<c>roles: leader</c>) binds to an empty list; say so.</summary>
        public string? NotAList(string key, string name) =>
            configuration[key] is { Length: > 0 } text ? $"'{text}' is not a list; write {name}: [\"{text}\"]" : null;

        public void Seconds(string key, double seconds)
        {
            // "not > 0" also catches NaN.
            if (!(seconds > 0))
            {
                Error(key, $"must be a positive number of seconds, got {seconds.ToString(CultureInfo.InvariantCulture)}");
            }
            else if (seconds > MaxSeconds)
            {
                Error(key, $"must be at most {MaxSeconds.ToString(CultureInfo.InvariantCulture)} seconds (one day), got {seconds.ToString(CultureInfo.InvariantCulture)}");
            }
        }

        public void ReadableFile(string key, string? path)
        {
            if (string.IsNullOrEmpty(path))
            {
                return;
            }
            try
            {
                using var _ = File.OpenRead(path);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
            {
                Error(key, $"cannot read '{path}': {ex.Message}");
            }
        }
    }
}
