using System.Net.Security;
using System.Security.Authentication;
using Microsoft.Extensions.Configuration;

namespace PatroniYarp.Configuration;

// patroniglue's config.yml sections (frontend, backend, cache), bound at the top level next to patroni_proxy's keys
// so that a patroniglue file works unchanged. Its hyphenated keys (tls-min-version, tls-ciphers) are kept as they are.

/// <summary>Where the health-check API listens besides the admin listener (patroniglue's <c>frontend</c>).</summary>
internal sealed record FrontendOptions
{
    /// <summary>Address to listen on (patroniglue: localhost).</summary>
    [ConfigurationKeyName("host")]
    public string Host { get; init; } = "localhost";

    /// <summary>Port to listen on (patroniglue: 80).</summary>
    [ConfigurationKeyName("port")]
    public int Port { get; init; } = 80;

    /// <summary>PEM certificate; HTTPS when both this and <see cref="KeyFile"/> are set.</summary>
    [ConfigurationKeyName("certfile")]
    public string? CertFile { get; init; }

    [ConfigurationKeyName("keyfile")]
    public string? KeyFile { get; init; }

    /// <summary>SSLv3.0, TLSv1.0, TLSv1.1, TLSv1.2 or TLSv1.3; absent: the platform's defaults.</summary>
    [ConfigurationKeyName("tls-min-version")]
    public string? TlsMinVersion { get; init; }

    /// <summary>Cipher suite names (Go's crypto/tls constant names, which are the IANA names); absent: the platform's.</summary>
    [ConfigurationKeyName("tls-ciphers")]
    public IReadOnlyList<string> TlsCiphers { get; init; } = [];

    public bool IsHttps => !string.IsNullOrEmpty(CertFile) && !string.IsNullOrEmpty(KeyFile);

    /// <summary>host:port as a listen address (an IPv6 host gets its brackets).</summary>
    public string ListenText => Host.Contains(':') && !Host.StartsWith('[') ? $"[{Host}]:{Port}" : $"{Host}:{Port}";
}

/// <summary>The Patroni REST API that the sidecar checks are forwarded to (patroniglue's <c>backend</c>).</summary>
internal sealed record BackendOptions
{
    [ConfigurationKeyName("host")]
    public string Host { get; init; } = "127.0.0.1";

    [ConfigurationKeyName("port")]
    public int Port { get; init; } = 8008;

    /// <summary>http or https.</summary>
    [ConfigurationKeyName("scheme")]
    public string Scheme { get; init; } = "http";

    /// <summary>Skip certificate checks towards an https backend.</summary>
    [ConfigurationKeyName("insecure")]
    public bool Insecure { get; init; }

    /// <summary>Seconds one call to Patroni may take before the check answers 503 (PatroniYarp addition).</summary>
    [ConfigurationKeyName("timeout")]
    public double Timeout { get; init; } = 2;

    public TimeSpan TimeoutPeriod => TimeSpan.FromSeconds(Timeout);

    /// <summary>The YARP destination address, e.g. http://127.0.0.1:8008/.</summary>
    public string Address => $"{Scheme.ToLowerInvariant()}://{(Host.Contains(':') && !Host.StartsWith('[') ? $"[{Host}]" : Host)}:{Port}/";
}

/// <summary>The sidecar checks' answer cache (patroniglue's <c>cache</c>).</summary>
internal sealed record CacheOptions
{
    /// <summary>Seconds an answer is served from the cache; 0 turns caching off (concurrent calls are still merged).</summary>
    [ConfigurationKeyName("ttl")]
    public double Ttl { get; init; } = 1;

    /// <summary>Seconds between two sweeps of expired answers.</summary>
    [ConfigurationKeyName("interval")]
    public double Interval { get; init; } = 0.25;

    /// <summary>
    /// Seconds the last good answer may be served when Patroni fails or times out (PatroniYarp addition); 0, the
    /// default, never serves a stale answer: a stale 200 from a former primary could send writes to a replica.
    /// </summary>
    [ConfigurationKeyName("stale_if_error")]
    public double StaleIfError { get; init; }

    public TimeSpan TtlPeriod => TimeSpan.FromSeconds(Ttl);

    public TimeSpan IntervalPeriod => TimeSpan.FromSeconds(Interval);

    public TimeSpan StaleIfErrorPeriod => TimeSpan.FromSeconds(StaleIfError);
}

/// <summary>patroniglue's TLS settings in .NET's terms.</summary>
internal static class PatroniGlueTls
{
    public const string ExpectedVersions = "SSLv3.0, TLSv1.0, TLSv1.1, TLSv1.2, TLSv1.3";

    // Go's crypto/tls keeps two names without the hash suffix as aliases of the IANA names.
    private static readonly Dictionary<string, TlsCipherSuite> GoAliases = new(StringComparer.Ordinal)
    {
        ["TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305"] = TlsCipherSuite.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ["TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"] = TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    };

    /// <summary>
    /// The protocols from <paramref name="minVersion"/> up. False with an error for unknown names and for versions this
    /// platform cannot offer (.NET has no SSL 3.0).
    /// </summary>
    public static bool TryParseMinVersion(string minVersion, out SslProtocols protocols, out string error)
    {
        // Enumerating old members is the point here: they are named to say they cannot be had.
#pragma warning disable SYSLIB0039
        protocols = minVersion switch
        {
            "TLSv1.0" => SslProtocols.Tls | SslProtocols.Tls11 | SslProtocols.Tls12 | SslProtocols.Tls13,
            "TLSv1.1" => SslProtocols.Tls11 | SslProtocols.Tls12 | SslProtocols.Tls13,
            "TLSv1.2" => SslProtocols.Tls12 | SslProtocols.Tls13,
            "TLSv1.3" => SslProtocols.Tls13,
            _ => SslProtocols.None,
        };
#pragma warning restore SYSLIB0039
        error = minVersion switch
        {
            _ when protocols != SslProtocols.None => "",
            "SSLv3.0" => "SSLv3.0 cannot be offered: .NET does not implement SSL 3.0 (it is broken, RFC 7568); use TLSv1.2",
            _ => $"unknown TLS version '{minVersion}' (expected one of {ExpectedVersions})",
        };
        return protocols != SslProtocols.None;
    }

    private static readonly HashSet<TlsCipherSuite> Tls13Suites =
    [
        TlsCipherSuite.TLS_AES_128_GCM_SHA256,
        TlsCipherSuite.TLS_AES_256_GCM_SHA384,
        TlsCipherSuite.TLS_CHACHA20_POLY1305_SHA256,
        TlsCipherSuite.TLS_AES_128_CCM_SHA256,
        TlsCipherSuite.TLS_AES_128_CCM_8_SHA256,
    ];

    /// <summary>
    /// The protocols a frontend offers: from tls-min-version up (all the platform's when absent), less those for which
    /// tls-ciphers names no suite. TLS 1.3 has suites of its own; offering it with none makes OpenSSL refuse every
    /// handshake, TLS 1.2 ones included. None when nothing is left.
    /// </summary>
    public static SslProtocols? EffectiveProtocols(SslProtocols? minVersion, IReadOnlyList<TlsCipherSuite> ciphers)
    {
        if (ciphers.Count == 0)
        {
            return minVersion;
        }
        var protocols = minVersion ?? SslProtocols.Tls12 | SslProtocols.Tls13;
        if (!ciphers.Any(Tls13Suites.Contains))
        {
            protocols &= ~SslProtocols.Tls13;
        }
        if (ciphers.All(Tls13Suites.Contains))
        {
            protocols &= SslProtocols.Tls13;
        }
        return protocols;
    }

    /// <summary>The cipher suites named; the unknown names, if any, in <paramref name="unknown"/>.</summary>
    public static IReadOnlyList<TlsCipherSuite> ParseCiphers(IEnumerable<string> names, out IReadOnlyList<string> unknown)
    {
        var suites = new List<TlsCipherSuite>();
        var bad = new List<string>();
        foreach (var name in names)
        {
            var trimmed = name.Trim();
            // Enum.TryParse would also take numbers and case variants; only exact names are names.
            if (GoAliases.TryGetValue(trimmed, out var suite)
                || Enum.GetNames<TlsCipherSuite>().Contains(trimmed, StringComparer.Ordinal) && Enum.TryParse(trimmed, out suite))
            {
                suites.Add(suite);
            }
            else
            {
                bad.Add(name);
            }
        }
        unknown = bad;
        return suites;
    }
}
