using Microsoft.Extensions.Configuration;
using PatroniYarp.Configuration;

namespace PatroniYarp.Tests.Configuration;

public sealed class ProxyOptionsLoaderTests : IDisposable
{
    /// <summary>patroni_proxy's README example, verbatim.</summary>
    internal const string PatroniProxySample = """
        # Cluster update interval in seconds (default: 3)
        cluster_update_interval: 3

        # HTTP API listen address for health checks and manual updates (default: 127.0.0.1:8009)
        listen_address: "127.0.0.1:8009"

        clusters:
          my_cluster:
            # Patroni API endpoints (multiple for redundancy)
            hosts:
              - "http://192.168.1.1:8008"
              - "http://192.168.1.2:8008"
              - "http://192.168.1.3:8008"
            
            # Optional: TLS configuration for Patroni API
            # tls:
            #   ca_cert: "/path/to/ca.crt"
            #   client_cert: "/path/to/client.crt"
            #   client_key: "/path/to/client.key"
            #   skip_verify: false
            
            ports:
              # Primary/master connections
              master:
                listen: "0.0.0.0:6432"
                roles: ["leader"]
                host_port: 5432
              
              # Read-only connections to replicas
              replicas:
                listen: "0.0.0.0:6433"
                roles: ["sync", "async"]
                host_port: 5432
                max_lag_in_bytes: 16777216  # 16MB
        """;

    private readonly TempConfigDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Load_PatroniProxySample_BindsAsDocumented()
    {
        var result = ProxyOptionsLoader.Load(Root(PatroniProxySample));

        Assert.Empty(result.Errors);
        Assert.Empty(result.Warnings);
        var options = Assert.IsType<ProxyOptions>(result.Options);
        Assert.Equal(3, options.ClusterUpdateInterval);
        Assert.Equal(TimeSpan.FromSeconds(3), options.ClusterUpdatePeriod);
        Assert.Equal("127.0.0.1:8009", options.EffectiveListenAddress);
        Assert.Equal(2, options.ApiTimeout);
        var cluster = Assert.Single(options.Clusters);
        Assert.Equal("my_cluster", cluster.Key);
        Assert.Equal(["http://192.168.1.1:8008", "http://192.168.1.2:8008", "http://192.168.1.3:8008"], cluster.Value.Hosts);
        Assert.Null(cluster.Value.Tls);
        Assert.Equal(["master", "replicas"], cluster.Value.Ports.Keys.Order());
        var master = cluster.Value.Ports["master"];
        Assert.Equal("0.0.0.0:6432", master.Listen);
        Assert.Equal(["leader"], master.Roles);
        Assert.Equal(5432, master.HostPort);
        Assert.Null(master.MaxLagInBytes);
        Assert.Equal(2, master.ConnectTimeout);
        var replicas = cluster.Value.Ports["replicas"];
        Assert.Equal("0.0.0.0:6433", replicas.Listen);
        Assert.Equal(["sync", "async"], replicas.Roles);
        Assert.Equal(5432, replicas.HostPort);
        Assert.Equal(16777216, replicas.MaxLagInBytes);
    }

    [Fact]
    public void Load_TlsAndOptionalKeys_Bound()
    {
        var ca = _dir.Write("ca.crt", "ca");
        var cert = _dir.Write("client.crt", "cert");
        var key = _dir.Write("client.key", "key");
        var result = ProxyOptionsLoader.Load(Root($$"""
            api_timeout: 0.5
            clusters:
              main:
                hosts: ["https://10.0.0.1:8008"]
                tls: {ca_cert: "{{ca}}", client_cert: "{{cert}}", client_key: "{{key}}", skip_verify: true}
                ports:
                  any: {listen: "[::1]:6432", roles: [ANY], connect_timeout: 1.5}
            """));

        Assert.Empty(result.Errors);
        var cluster = result.Options!.Clusters["main"];
        Assert.Equal(new TlsOptions { CaCert = ca, ClientCert = cert, ClientKey = key, SkipVerify = true }, cluster.Tls);
        Assert.Equal(0.5, result.Options.ApiTimeout);
        Assert.Null(cluster.Ports["any"].HostPort);
        Assert.Equal(1.5, cluster.Ports["any"].ConnectTimeout);
    }

    [Fact]
    public void Load_WrongTypeInPort_ErrorNamesFileAndKeyInsteadOfDroppingThePort()
    {
        var result = ProxyOptionsLoader.Load(Root(PatroniProxySample.Replace("roles: [\"leader\"]\n        host_port: 5432", "roles: [\"leader\"]\n        host_port: 54x32")));

        Assert.Null(result.Options);
        var error = Assert.Single(result.Errors);
        Assert.StartsWith("patroni.yaml: clusters.my_cluster.ports.master.host_port: invalid value '54x32'", error);
    }

    [Fact]
    public void Load_WrongTypeInTlsAndTopLevel_EveryErrorReported()
    {
        var result = ProxyOptionsLoader.Load(Root(PatroniProxySample
            .Replace("cluster_update_interval: 3", "cluster_update_interval: often")
            .Replace("    # tls:", "    tls: {skip_verify: maybe}")));

        Assert.Null(result.Options);
        Assert.Equal(2, result.Errors.Count);
        Assert.Contains(result.Errors, e => e.StartsWith("patroni.yaml: cluster_update_interval: invalid value 'often'", StringComparison.Ordinal));
        Assert.Contains(result.Errors, e => e.StartsWith("patroni.yaml: clusters.my_cluster.tls.skip_verify: invalid value 'maybe'", StringComparison.Ordinal));
    }

    [Fact]
    public void Load_ParseError_ReportedWithFileAndLine()
    {
        var path = _dir.Write("patroni.yaml", "clusters: [\n");
        var root = new ConfigurationBuilder().AddYamlFile(s =>
        {
            s.Path = path;
            s.ResolveFileProvider();
            s.OnLoadException = context => context.Ignore = true;
        }).Build();

        var error = Assert.Single(ProxyOptionsLoader.Load(root).Errors);
        Assert.StartsWith("patroni.yaml: line ", error);
    }

    [Fact]
    public void Load_Precedence_JsonThenYamlThenEnvironmentStyle()
    {
        var json = _dir.Write("appsettings.json", """
            {"cluster_update_interval": 1, "api_timeout": 1, "clusters": {"my_cluster": {"ports": {"master": {"connect_timeout": 7}}}}}
            """);
        var yaml = _dir.Write("patroni.yaml", PatroniProxySample.Replace("cluster_update_interval: 3", "cluster_update_interval: 2\napi_timeout: 2"));
        var root = new ConfigurationBuilder()
            .AddJsonFile(json)
            .AddYamlFile(yaml)
            .AddInMemoryCollection(new Dictionary<string, string?> { ["api_timeout"] = "3", ["clusters:my_cluster:hosts:0"] = "http://10.9.9.9:8008" })
            .Build();

        var options = ProxyOptionsLoader.Load(root).Options!;

        Assert.Equal(7, options.Clusters["my_cluster"].Ports["master"].ConnectTimeout);
        Assert.Equal(2, options.ClusterUpdateInterval);
        Assert.Equal(3, options.ApiTimeout);
        Assert.Equal(["http://10.9.9.9:8008", "http://192.168.1.2:8008", "http://192.168.1.3:8008"], options.Clusters["my_cluster"].Hosts);
    }

    private IConfigurationRoot Root(string yaml) =>
        new ConfigurationBuilder().AddYamlFile(_dir.Write("patroni.yaml", yaml)).Build();
}
