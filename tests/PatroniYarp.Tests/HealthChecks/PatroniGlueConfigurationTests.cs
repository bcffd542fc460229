using System.Security.Authentication;
using Microsoft.Extensions.Configuration;
using PatroniYarp.Configuration;
using PatroniYarp.Tests.Configuration;

namespace PatroniYarp.Tests.HealthChecks;

/// <summary>patroniglue's config.yml through PatroniYarp's configuration loader and validator.</summary>
public sealed class PatroniGlueConfigurationTests : IDisposable
{
    private const string PatroniGlueExample = """
        ---
        frontend:
          host: 127.0.0.1
          port: 8443
          certfile: CERT
          keyfile: KEY
          tls-min-version: TLSv1.2
          tls-ciphers:
            - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
            - TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305
        backend:
          host: 127.0.0.1
          port: 8008
          scheme: http
        cache:
          ttl: 1
          interval: 0.25
        """;

    private readonly TempConfigDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Load_PatroniGlueFileAlone_IsACompleteConfiguration()
    {
        var result = Load(PatroniGlueExample);

        Assert.Empty(result.Errors);
        Assert.Empty(result.Warnings);
        var options = result.Options!;
        Assert.Equal("127.0.0.1:8443", options.Frontend!.ListenText);
        Assert.True(options.Frontend.IsHttps);
        Assert.Equal("TLSv1.2", options.Frontend.TlsMinVersion);
        Assert.Equal(2, options.Frontend.TlsCiphers.Count);
        Assert.Equal("http://127.0.0.1:8008/", options.SidecarBackend!.Address);
        Assert.Equal(TimeSpan.FromSeconds(1), options.Cache.TtlPeriod);
        Assert.Equal(TimeSpan.FromSeconds(0.25), options.Cache.IntervalPeriod);
        Assert.Equal(0, options.Cache.StaleIfError);
        // No TCP ports and no admin listener: several sidecars can share a host.
        Assert.Empty(options.Clusters);
        Assert.False(options.AdminListenerEnabled);
    }

    [Fact]
    public void Load_BackendAlone_DefaultsApply()
    {
        var options = Load("backend: {host: 10.0.0.1}\n").Options!;

        Assert.Equal("http://10.0.0.1:8008/", options.SidecarBackend!.Address);
        Assert.Equal(TimeSpan.FromSeconds(2), options.SidecarBackend.TimeoutPeriod);
        Assert.Null(options.Frontend);
    }

    [Fact]
    public void Load_WithClustersOrListenAddress_AdminListenerOpens()
    {
        Assert.True(Load(PatroniGlueExample.Replace("---\n", "---\nlisten_address: 127.0.0.1:8009\n")).Options!.AdminListenerEnabled);
        Assert.True(Load(ConfigurationSamples.Minimal).Options!.AdminListenerEnabled);
    }

    [Fact]
    public void Load_UnknownCipherNames_ErrorNamesThem()
    {
        var error = SingleError(PatroniGlueExample.Replace("- TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", "- TLS_RSA_WITH_RC4_128_MD6\n    - bogus"), "frontend.tls-ciphers");

        Assert.Contains("unknown cipher suite(s): TLS_RSA_WITH_RC4_128_MD6, bogus", error);
    }

    [Fact]
    public void Load_CiphersAsText_ErrorSaysItIsNotAList()
    {
        var yaml = PatroniGlueExample.Replace("""
              tls-ciphers:
                - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
                - TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305
            """, "  tls-ciphers: TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");

        Assert.Contains("is not a list", SingleError(yaml, "frontend.tls-ciphers"));
    }

    [Fact]
    public void Load_Sslv3_ErrorSaysThePlatformCannotOfferIt()
    {
        Assert.Contains("SSLv3.0 cannot be offered", SingleError(PatroniGlueExample.Replace("TLSv1.2", "SSLv3.0"), "frontend.tls-min-version"));
    }

    [Theory]
    [InlineData("TLSv1.4")]
    [InlineData("tls1.2")]
    public void Load_UnknownTlsVersion_ErrorListsTheNames(string version)
    {
        var error = SingleError(PatroniGlueExample.Replace("TLSv1.2", version), "frontend.tls-min-version");

        Assert.Contains($"unknown TLS version '{version}'", error);
        Assert.Contains(PatroniGlueTls.ExpectedVersions, error);
    }

    [Fact]
    public void Load_CertWithoutKey_Error()
    {
        var yaml = PatroniGlueExample.Replace("  keyfile: KEY\n", "");

        Assert.Contains("needs both certfile and keyfile", SingleError(yaml, "frontend.certfile"));
    }

    [Fact]
    public void Load_MissingCertFile_ErrorNamesThePath()
    {
        var yaml = PatroniGlueExample.Replace("CERT", "/nonexistent/cert.pem");

        Assert.Contains("cannot read '/nonexistent/cert.pem'", SingleError(yaml, "frontend.certfile"));
    }

    [Theory]
    [InlineData("backend: {scheme: ftp}\n", "backend.scheme", "'ftp' is not a scheme")]
    [InlineData("backend: {port: 70000}\n", "backend.port", "70000 is not a port")]
    [InlineData("backend: {timeout: 0}\n", "backend.timeout", "must be a positive number of seconds")]
    [InlineData("backend: {host: 127.0.0.1}\ncache: {ttl: -1}\n", "cache.ttl", "must be 0 (no caching)")]
    [InlineData("backend: {host: 127.0.0.1}\ncache: {interval: 0}\n", "cache.interval", "must be a positive number of seconds")]
    [InlineData("backend: {host: 127.0.0.1}\ncache: {stale_if_error: -5}\n", "cache.stale_if_error", "must be 0 (off)")]
    [InlineData("frontend: {port: 0}\n", "frontend.port", "0 is not a port")]
    public void Load_BadValues_ErrorNamesTheKey(string yaml, string key, string message)
    {
        Assert.Contains(message, SingleError(yaml, key));
    }

    [Fact]
    public void Load_FrontendOnATcpPortsAddress_Clash()
    {
        var yaml = ConfigurationSamples.Minimal + "\nfrontend: {host: 127.0.0.1, port: 6432}\n";

        Assert.Contains("clashes with frontend ('127.0.0.1:6432')", SingleError(yaml, "clusters.main.ports.master.listen"));
    }

    [Fact]
    public void Load_PatroniGlueLogFormat_WarnedAndIgnored()
    {
        var result = Load(PatroniGlueExample.Replace("  port: 8443\n", "  port: 8443\n  logformat: \"%a - %m %U\"\n"));

        Assert.NotNull(result.Options);
        Assert.Contains(result.Warnings, w => w.StartsWith("patroni.yaml: frontend.logformat: unknown key", StringComparison.Ordinal));
    }

    [Fact]
    public void ParseMinVersion_MapsToThisAndLaterVersions()
    {
        Assert.True(PatroniGlueTls.TryParseMinVersion("TLSv1.2", out var protocols, out _));
        Assert.Equal(SslProtocols.Tls12 | SslProtocols.Tls13, protocols);
        Assert.True(PatroniGlueTls.TryParseMinVersion("TLSv1.3", out protocols, out _));
        Assert.Equal(SslProtocols.Tls13, protocols);
    }

    [Fact]
    public void EffectiveProtocols_OnlyTls12Suites_Tls13NotOffered()
    {
        var suites = PatroniGlueTls.ParseCiphers(["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"], out _);

        Assert.Equal(SslProtocols.Tls12, PatroniGlueTls.EffectiveProtocols(SslProtocols.Tls12 | SslProtocols.Tls13, suites));
        Assert.Equal(SslProtocols.Tls12, PatroniGlueTls.EffectiveProtocols(null, suites));
    }

    [Fact]
    public void EffectiveProtocols_OnlyTls13Suites_OnlyTls13()
    {
        var suites = PatroniGlueTls.ParseCiphers(["TLS_AES_128_GCM_SHA256"], out _);

        Assert.Equal(SslProtocols.Tls13, PatroniGlueTls.EffectiveProtocols(SslProtocols.Tls12 | SslProtocols.Tls13, suites));
    }

    [Fact]
    public void Load_Tls13MinimumWithOnlyTls12Ciphers_Error()
    {
        var error = SingleError(PatroniGlueExample.Replace("TLSv1.2", "TLSv1.3"), "frontend.tls-ciphers");

        Assert.Contains("no suite listed can be used with TLSv1.3 and later", error);
    }

    private ProxyOptionsLoadResult Load(string yaml)
    {
        var cert = _dir.Write("cert.pem", "certificate");
        var key = _dir.Write("key.pem", "key");
        var file = _dir.Write("patroni.yaml", yaml.Replace("CERT", cert).Replace("KEY", key));
        return ProxyOptionsLoader.Load(new ConfigurationBuilder().AddYamlFile(file).Build());
    }

    private string SingleError(string yaml, string key)
    {
        var result = Load(yaml);
        Assert.Null(result.Options);
        var error = Assert.Single(result.Errors);
        Assert.StartsWith($"patroni.yaml: {key}: ", error);
        return error;
    }
}
