using Microsoft.Extensions.Configuration;
using PatroniYarp.Configuration;

namespace PatroniYarp.Tests.Configuration;

public sealed class ProxyOptionsValidatorTests : IDisposable
{
    private readonly TempConfigDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Validate_MinimalConfiguration_NoErrorsNoWarnings()
    {
        var result = Load(ConfigurationSamples.Minimal);

        Assert.Empty(result.Errors);
        Assert.Empty(result.Warnings);
        Assert.NotNull(result.Options);
    }

    [Fact]
    public void Validate_NoClusters_ErrorShowsAMinimalConfiguration()
    {
        var error = SingleError("cluster_update_interval: 3\n", "clusters");

        Assert.Contains("no clusters configured", error);
        Assert.Contains("hosts: [\"http://127.0.0.1:8008\"]", error);
        Assert.Contains("roles: [leader]", error);
    }

    [Fact]
    public void Validate_NoClustersAndNoFile_SaysTheFileIsMissing()
    {
        var root = new ConfigurationBuilder().AddYamlFile(Path.Combine(_dir.Path, "patroni.yaml"), optional: true).Build();

        var error = Assert.Single(ProxyOptionsLoader.Load(root).Errors);
        Assert.StartsWith("patroni.yaml (not found): clusters: no clusters configured", error);
    }

    [Fact]
    public void Validate_EmptyHosts_Error()
    {
        Assert.Contains("no hosts", SingleError(ConfigurationSamples.Minimal.Replace("""hosts: ["http://127.0.0.1:8008"]""", "hosts: []"), "clusters.main.hosts"));
    }

    [Fact]
    public void Validate_HostsAsText_ErrorSaysItIsNotAList()
    {
        Assert.Contains("'http://127.0.0.1:8008' is not a list", SingleError(ConfigurationSamples.Minimal.Replace("""hosts: ["http://127.0.0.1:8008"]""", "hosts: http://127.0.0.1:8008"), "clusters.main.hosts"));
    }

    [Theory]
    [InlineData("127.0.0.1:8008")]
    [InlineData("ftp://127.0.0.1:8008")]
    [InlineData("/cluster")]
    [InlineData("")]
    public void Validate_HostNotAnHttpUrl_Error(string host)
    {
        var error = SingleError(ConfigurationSamples.Minimal.Replace("http://127.0.0.1:8008", host), "clusters.main.hosts[0]");

        Assert.Contains($"'{host}' is not an http(s) URL", error);
    }

    [Fact]
    public void Validate_DuplicateHosts_ErrorNamesTheFirst()
    {
        var error = SingleError(ConfigurationSamples.Minimal.Replace("""["http://127.0.0.1:8008"]""", """["http://127.0.0.1:8008", "http://10.0.0.2:8008", "HTTP://127.0.0.1:8008/"]"""), "clusters.main.hosts[2]");

        Assert.Contains("duplicate host 'HTTP://127.0.0.1:8008/' (same as clusters.main.hosts[0])", error);
    }

    [Fact]
    public void Validate_EmptyPorts_Error()
    {
        Assert.Contains("no ports", SingleError(ConfigurationSamples.Minimal.Replace("""      master: {listen: "127.0.0.1:6432", roles: [leader]}""", "").Replace("ports:", "ports: {}"), "clusters.main.ports"));
    }

    [Fact]
    public void Validate_EmptyRoles_Error()
    {
        Assert.Contains("no roles (expected one or more of leader, sync, async, any", SingleError(ConfigurationSamples.Minimal.Replace("roles: [leader]", "roles: []"), "clusters.main.ports.master.roles"));
    }

    [Fact]
    public void Validate_UnknownRole_ErrorListsTheKnownOnes()
    {
        var error = SingleError(ConfigurationSamples.Minimal.Replace("roles: [leader]", "roles: [leader, lead]"), "clusters.main.ports.master.roles[1]");

        Assert.Equal("patroni.yaml: clusters.main.ports.master.roles[1]: unknown role 'lead' (expected leader, sync, async, any, standby_leader, master, primary, replica)", error);
    }

    [Theory]
    [InlineData("leader")]
    [InlineData("Sync")]
    [InlineData("ASYNC")]
    [InlineData("any")]
    [InlineData("standby_leader")]
    [InlineData("master")]
    [InlineData("primary")]
    [InlineData("replica")]
    public void Validate_KnownRole_NoError(string role)
    {
        Assert.Empty(Load(ConfigurationSamples.Minimal.Replace("roles: [leader]", $"roles: [{role}]")).Errors);
    }

    [Theory]
    [InlineData("6432")]
    [InlineData("::1:6432")]
    [InlineData("127.0.0.1:0")]
    [InlineData("127.0.0.1:65536")]
    [InlineData("127.0.0.1:port")]
    public void Validate_UnparsableListen_Error(string listen)
    {
        var error = SingleError(ConfigurationSamples.Minimal.Replace("127.0.0.1:6432", listen), "clusters.main.ports.master.listen");

        Assert.Contains($"'{listen}' is not a listen address", error);
    }

    [Fact]
    public void Validate_MissingListen_Error()
    {
        Assert.Contains("no listen address", SingleError(ConfigurationSamples.Minimal.Replace("""listen: "127.0.0.1:6432", """, ""), "clusters.main.ports.master.listen"));
    }

    [Theory]
    [InlineData("0.0.0.0:6432")]
    [InlineData("[::1]:6432")]
    [InlineData("*:6432")]
    [InlineData("localhost:6432")]
    [InlineData("db.example.com:6432")]
    public void Validate_AcceptedListenForms_NoError(string listen)
    {
        Assert.Empty(Load(ConfigurationSamples.Minimal.Replace("127.0.0.1:6432", listen)).Errors);
    }

    [Fact]
    public void Validate_DuplicateListenAcrossClusters_ErrorNamesBoth()
    {
        var error = SingleError(ConfigurationSamples.Minimal + """

              other:
                hosts: ["http://127.0.0.2:8008"]
                ports:
                  rw: {listen: "0.0.0.0:6432", roles: [leader]}
            """, "clusters.other.ports.rw.listen");

        Assert.Contains("listen address '0.0.0.0:6432' clashes with clusters.main.ports.master.listen ('127.0.0.1:6432')", error);
    }

    [Fact]
    public void Validate_ListenClashesWithListenAddress_Error()
    {
        var error = SingleError("listen_address: \"127.0.0.1:6432\"\n" + ConfigurationSamples.Minimal, "clusters.main.ports.master.listen");

        Assert.Contains("clashes with listen_address", error);
    }

    [Fact]
    public void Validate_ListenClashesWithDefaultListenAddress_Error()
    {
        Assert.Contains("clashes with listen_address ('127.0.0.1:8009')", SingleError(ConfigurationSamples.Minimal.Replace("127.0.0.1:6432", "*:8009"), "clusters.main.ports.master.listen"));
    }

    [Fact]
    public void Validate_UnparsableListenAddress_Error()
    {
        Assert.Contains("'8009' is not a listen address", SingleError("listen_address: \"8009\"\n" + ConfigurationSamples.Minimal, "listen_address"));
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-1")]
    [InlineData("86401")]
    [InlineData("NaN")]
    public void Validate_BadClusterUpdateInterval_Error(string seconds)
    {
        Assert.Contains("seconds", SingleError(ConfigurationSamples.Minimal.Replace("cluster_update_interval: 3", $"cluster_update_interval: {seconds}"), "cluster_update_interval"));
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-2")]
    public void Validate_ZeroOrNegativeApiTimeout_Error(string seconds)
    {
        Assert.Contains("must be a positive number of seconds", SingleError($"api_timeout: {seconds}\n" + ConfigurationSamples.Minimal, "api_timeout"));
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-2")]
    public void Validate_ZeroOrNegativeConnectTimeout_Error(string seconds)
    {
        Assert.Contains("must be a positive number of seconds", SingleError(ConfigurationSamples.Minimal.Replace("roles: [leader]", $"roles: [leader], connect_timeout: {seconds}"), "clusters.main.ports.master.connect_timeout"));
    }

    [Theory]
    [InlineData("-1")]
    [InlineData("86401")]
    public void Validate_NegativeOrHugeLeaderWaitTimeout_Error(string seconds)
    {
        Assert.Contains("must be 0 (do not hold)", SingleError(ConfigurationSamples.Minimal.Replace("roles: [leader]", $"roles: [leader], leader_wait_timeout: {seconds}"), "clusters.main.ports.master.leader_wait_timeout"));
    }

    [Fact]
    public void Validate_NegativeMaxWaiting_Error()
    {
        Assert.Contains("must be 0 (hold no session)", SingleError(ConfigurationSamples.Minimal.Replace("roles: [leader]", "roles: [leader], max_waiting: -1"), "clusters.main.ports.master.max_waiting"));
    }

    [Theory]
    [InlineData("-1")]
    [InlineData("101")]
    public void Validate_PreconnectOutOfRange_Error(string count)
    {
        Assert.Contains("must be 0 (off) or a number of spare connections per member up to 100", SingleError(ConfigurationSamples.Minimal.Replace("roles: [leader]", $"roles: [leader], preconnect: {count}"), "clusters.main.ports.master.preconnect"));
    }

    [Theory]
    [InlineData(", preconnect: 2", 2)]
    [InlineData(", preconnect: 0", 0)]
    [InlineData("", 1)]
    public void Validate_Preconnect_ReadFromThePortWithoutWarningAndOneWhenUnset(string line, int expected)
    {
        var result = Load(ConfigurationSamples.Minimal.Replace("roles: [leader]", $"roles: [leader]{line}"));

        Assert.Empty(result.Warnings);
        Assert.Equal(expected, result.Options!.Clusters["main"].Ports["master"].Preconnect);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-16777216")]
    public void Validate_ZeroOrNegativeMaxLag_Error(string bytes)
    {
        Assert.Contains("must be a positive number of bytes", SingleError(ConfigurationSamples.Minimal.Replace("roles: [leader]", $"roles: [leader], max_lag_in_bytes: {bytes}"), "clusters.main.ports.master.max_lag_in_bytes"));
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-5432")]
    [InlineData("65536")]
    public void Validate_HostPortOutOfRange_Error(string port)
    {
        Assert.Contains($"{port} is not a port (expected 1-65535)", SingleError(ConfigurationSamples.Minimal.Replace("roles: [leader]", $"roles: [leader], host_port: {port}"), "clusters.main.ports.master.host_port"));
    }

    [Theory]
    [InlineData("ca_cert")]
    [InlineData("client_cert")]
    [InlineData("client_key")]
    public void Validate_UnreadableTlsFile_Error(string key)
    {
        var present = _dir.Write("present.pem", "x");
        var missing = Path.Combine(_dir.Path, "missing.pem");
        var tls = new Dictionary<string, string> { ["ca_cert"] = present, ["client_cert"] = present, ["client_key"] = present };
        tls[key] = missing;

        var error = SingleError(WithTls(string.Join(", ", tls.Select(kv => $"{kv.Key}: \"{kv.Value}\""))), $"clusters.main.tls.{key}");

        Assert.Contains($"cannot read '{missing}'", error);
    }

    [Fact]
    public void Validate_TlsFileIsADirectory_Error()
    {
        Assert.Contains("cannot read", SingleError(WithTls($"ca_cert: \"{_dir.Path}\""), "clusters.main.tls.ca_cert"));
    }

    [Fact]
    public void Validate_ClientCertWithoutKey_Error()
    {
        var cert = _dir.Write("client.crt", "x");

        Assert.Contains("client_cert needs client_key", SingleError(WithTls($"client_cert: \"{cert}\""), "clusters.main.tls.client_cert"));
    }

    [Fact]
    public void Validate_ClientKeyWithoutCert_Error()
    {
        var key = _dir.Write("client.key", "x");

        Assert.Contains("client_key needs client_cert", SingleError(WithTls($"client_key: \"{key}\""), "clusters.main.tls.client_key"));
    }

    [Fact]
    public void Validate_SlashInClusterName_Error()
    {
        Assert.Contains("must not contain '/'", SingleError(ConfigurationSamples.Minimal.Replace("  main:", "  \"a/b\":"), "clusters.a/b"));
    }

    [Fact]
    public void Validate_ErrorFromEnvironmentVariable_SaysSo()
    {
        var prefix = $"PATRONIYARP_TEST_{Guid.NewGuid():N}_";
        Environment.SetEnvironmentVariable(prefix + "clusters__main__ports__master__roles__0", "lead");
        try
        {
            var root = new ConfigurationBuilder().AddYamlFile(_dir.Write("patroni.yaml", ConfigurationSamples.Minimal)).AddEnvironmentVariables(prefix).Build();

            var error = Assert.Single(ProxyOptionsLoader.Load(root).Errors);
            Assert.StartsWith("environment variables: clusters.main.ports.master.roles[0]: unknown role 'lead'", error);
        }
        finally
        {
            Environment.SetEnvironmentVariable(prefix + "clusters__main__ports__master__roles__0", null);
        }
    }

    [Fact]
    public void Validate_ErrorFromTheLastSourceThatSetsTheKey_NamesThatSource()
    {
        var json = _dir.Write("appsettings.json", """{"clusters": {"main": {"ports": {"master": {"roles": ["lead"]}}}}}""");
        var yaml = _dir.Write("patroni.yaml", ConfigurationSamples.Minimal.Replace("[leader]", "[leeder]"));

        var jsonThenYaml = ProxyOptionsLoader.Load(new ConfigurationBuilder().AddJsonFile(json).AddYamlFile(yaml).Build());
        var yamlThenJson = ProxyOptionsLoader.Load(new ConfigurationBuilder().AddYamlFile(yaml).AddJsonFile(json).Build());

        Assert.StartsWith("patroni.yaml: clusters.main.ports.master.roles[0]: unknown role 'leeder'", Assert.Single(jsonThenYaml.Errors));
        Assert.StartsWith("appsettings.json: clusters.main.ports.master.roles[0]: unknown role 'lead'", Assert.Single(yamlThenJson.Errors));
    }

    [Fact]
    public void Validate_EveryErrorAtOnce_AllReported()
    {
        var result = Load("""
            cluster_update_interval: 0
            clusters:
              main:
                hosts: []
                ports:
                  master: {listen: "nowhere", roles: [lead]}
            """);

        Assert.Null(result.Options);
        Assert.Equal(4, result.Errors.Count);
    }

    [Fact]
    public void Validate_UnknownKeys_WarnNamingFileAndKeyButDoNotFail()
    {
        var result = Load("""
            cluster_update_interval: 3
            cluster_update_intervall: 3
            Logging: {LogLevel: {Default: Debug}}
            clusters:
              main:
                host: ["http://127.0.0.1:8008"]
                hosts: ["http://127.0.0.1:8008"]
                tls: {skipverify: true}
                ports:
                  master: {listen: "127.0.0.1:6432", roles: [leader], max_lag: 5}
            """);

        Assert.Empty(result.Errors);
        Assert.NotNull(result.Options);
        Assert.Equal(4, result.Warnings.Count);
        Assert.Contains(result.Warnings, w => w.StartsWith("patroni.yaml: cluster_update_intervall: unknown key", StringComparison.Ordinal));
        Assert.Contains(result.Warnings, w => w.StartsWith("patroni.yaml: clusters.main.host: unknown key", StringComparison.Ordinal));
        Assert.Contains(result.Warnings, w => w.StartsWith("patroni.yaml: clusters.main.tls.skipverify: unknown key", StringComparison.Ordinal));
        Assert.Contains(result.Warnings, w => w.StartsWith("patroni.yaml: clusters.main.ports.master.max_lag: unknown key", StringComparison.Ordinal));
    }

    private string WithTls(string tls) => ConfigurationSamples.Minimal.Replace("    ports:", $"    tls: {{{tls}}}\n    ports:");

    private ProxyOptionsLoadResult Load(string yaml) =>
        ProxyOptionsLoader.Load(new ConfigurationBuilder().AddYamlFile(_dir.Write("patroni.yaml", yaml)).Build());

    /// <summary>Asserts exactly one error, naming patroni.yaml and the key, and returns it.</summary>
    private string SingleError(string yaml, string key)
    {
        var result = Load(yaml);
        Assert.Null(result.Options);
        var error = Assert.Single(result.Errors);
        Assert.StartsWith($"patroni.yaml: {key}: ", error);
        return error;
    }
}
