using Microsoft.Extensions.Configuration;

namespace PatroniYarp.Configuration;

/// <summary>
/// The whole PatroniYarp configuration, bound from the configuration root so that patroni_proxy's YAML keys
/// (snake_case, at the top level) work unchanged, from patroni.yaml, appsettings.json or environment variables.
/// </summary>
internal sealed record ProxyOptions
{
    public const string DefaultListenAddress = "127.0.0.1:8009";

    /// <summary>Seconds between two polls of a cluster's Patroni API (patroni_proxy: default 3).</summary>
    [ConfigurationKeyName("cluster_update_interval")]
    public double ClusterUpdateInterval { get; init; } = 3;

    /// <summary>Admin HTTP API address (patroni_proxy: default 127.0.0.1:8009).</summary>
    [ConfigurationKeyName("listen_address")]
    public string? ListenAddress { get; init; }

    /// <summary>
    /// When set, every admin API request needs <c>Authorization: Bearer &lt;admin_token&gt;</c> (PatroniYarp addition;
    /// meant for an admin API bound beyond loopback).
    /// </summary>
    [ConfigurationKeyName("admin_token")]
    public string? AdminToken { get; init; }

    /// <summary>Seconds one call to one Patroni host may take before the next host is tried.</summary>
    [ConfigurationKeyName("api_timeout")]
    public double ApiTimeout { get; init; } = 2;

    /// <summary>Seconds open sessions may run on after SIGTERM before they are closed (PatroniYarp addition).</summary>
    [ConfigurationKeyName("drain_timeout")]
    public double DrainTimeout { get; init; } = 30;

    [ConfigurationKeyName("clusters")]
    public IReadOnlyDictionary<string, ClusterOptions> Clusters { get; init; } = new Dictionary<string, ClusterOptions>();

    /// <summary>patroniglue: the health-check API's own listener (HTTP or HTTPS).</summary>
    [ConfigurationKeyName("frontend")]
    public FrontendOptions? Frontend { get; init; }

    /// <summary>patroniglue: the Patroni REST API the sidecar checks (/primary, /replica, …) are forwarded to.</summary>
    [ConfigurationKeyName("backend")]
    public BackendOptions? Backend { get; init; }

    /// <summary>patroniglue: how long sidecar check answers are cached.</summary>
    [ConfigurationKeyName("cache")]
    public CacheOptions Cache { get; init; } = new();

    public TimeSpan ClusterUpdatePeriod => TimeSpan.FromSeconds(ClusterUpdateInterval);

    public TimeSpan ApiTimeoutPeriod => TimeSpan.FromSeconds(ApiTimeout);

    public TimeSpan DrainPeriod => TimeSpan.FromSeconds(DrainTimeout);

    public string EffectiveListenAddress => string.IsNullOrWhiteSpace(ListenAddress) ? DefaultListenAddress : ListenAddress;

    /// <summary>
    /// The sidecar checks are on when a patroniglue frontend or backend is configured; the backend's defaults
    /// (127.0.0.1:8008) apply when only the frontend is.
    /// </summary>
    public BackendOptions? SidecarBackend => Backend ?? (Frontend is null ? null : new BackendOptions());

    /// <summary>
    /// The admin listener opens where patroni_proxy would have it (listen_address or clusters configured); a
    /// patroniglue file alone listens on its frontend only, so that several sidecars can run on one host.
    /// </summary>
    public bool AdminListenerEnabled => !string.IsNullOrWhiteSpace(ListenAddress) || Clusters.Count > 0;
}

/// <summary>One Patroni cluster: where its REST API is and which proxy ports it serves.</summary>
internal sealed record ClusterOptions
{
    /// <summary>Patroni REST API base URLs, e.g. http://10.0.0.1:8008.</summary>
    [ConfigurationKeyName("hosts")]
    public IReadOnlyList<string> Hosts { get; init; } = [];

    [ConfigurationKeyName("tls")]
    public TlsOptions? Tls { get; init; }

    [ConfigurationKeyName("ports")]
    public IReadOnlyDictionary<string, PortOptions> Ports { get; init; } = new Dictionary<string, PortOptions>();
}

/// <summary>TLS towards the Patroni REST API (patroni_proxy parses these and never uses them; PatroniYarp does).</summary>
internal sealed record TlsOptions
{
    [ConfigurationKeyName("ca_cert")]
    public string? CaCert { get; init; }

    [ConfigurationKeyName("client_cert")]
    public string? ClientCert { get; init; }

    [ConfigurationKeyName("client_key")]
    public string? ClientKey { get; init; }

    [ConfigurationKeyName("skip_verify")]
    public bool SkipVerify { get; init; }
}

/// <summary>One TCP listener that forwards PostgreSQL sessions to the members holding its roles.</summary>
internal sealed record PortOptions
{
    /// <summary>host:port to listen on, e.g. 0.0.0.0:6432 or [::1]:6432.</summary>
    [ConfigurationKeyName("listen")]
    public string Listen { get; init; } = "";

    /// <summary>leader, sync, async, any, standby_leader (aliases master/primary, replica).</summary>
    [ConfigurationKeyName("roles")]
    public IReadOnlyList<string> Roles { get; init; } = [];

    /// <summary>PostgreSQL port on the members; when absent, the member's own port from /cluster.</summary>
    [ConfigurationKeyName("host_port")]
    public int? HostPort { get; init; }

    /// <summary>Replicas lagging more than this many bytes are skipped; absent means no limit.</summary>
    [ConfigurationKeyName("max_lag_in_bytes")]
    public long? MaxLagInBytes { get; init; }

    /// <summary>Seconds a connect to one member may take before the next eligible one is tried.</summary>
    [ConfigurationKeyName("connect_timeout")]
    public double ConnectTimeout { get; init; } = 2;

    /// <summary>
    /// Seconds a new session is held while the port has no member to send it to (a leaderless moment during a
    /// switchover or failover, no eligible member), waiting for one to appear; then it is closed. 0 closes it at once,
    /// as patroni_proxy does. The name is kept from the leader case, but it applies to every port.
    /// </summary>
    [ConfigurationKeyName("leader_wait_timeout")]
    public double LeaderWaitTimeout { get; init; } = 5;

    /// <summary>Sessions the port holds at most while it waits for a member; beyond it new sessions are refused at once.</summary>
    [ConfigurationKeyName("max_waiting")]
    public int MaxWaiting { get; init; } = 1000;

    /// <summary>
    /// Backend connections kept open ahead of the next client, per member the port routes to, while clients come (0:
    /// none). PostgreSQL forks a connection's process before the startup, so a session that takes one starts faster
    /// (see SpareBackends).
    /// </summary>
    [ConfigurationKeyName("preconnect")]
    public int Preconnect { get; init; } = 1;

    public TimeSpan LeaderWaitPeriod => TimeSpan.FromSeconds(LeaderWaitTimeout);
}
