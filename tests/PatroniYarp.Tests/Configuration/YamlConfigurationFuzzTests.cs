using System.Text;
using Microsoft.Extensions.Configuration;
using PatroniYarp.Configuration;
using PatroniYarp.Tests.Fuzz;

namespace PatroniYarp.Tests.Configuration;

/// <summary>
/// Property: whatever the YAML file holds, the provider either loads it or throws a FormatException naming the place,
/// and binding plus validation then return options or errors; nothing else escapes, nothing hangs.
/// </summary>
public sealed class YamlConfigurationFuzzTests
{
    // Binding and validating cost ~0.2 ms a case (the /cluster parser: ~0.02 ms); with the parser's 100 000 this keeps
    // the fuzzing to a few seconds of the unit tests.
    private const int Cases = 100_000;

    private const string Full = """
        cluster_update_interval: 1.5
        listen_address: "[::1]:8009"
        api_timeout: 2
        drain_timeout: 30
        admin_token: "t0ken"
        clusters:
          main:
            hosts:
              - "https://10.0.0.1:8008"
              - "http://patroni-2.example:8008/"
            tls: {ca_cert: /nonexistent/ca.pem, client_cert: /nonexistent/c.pem, client_key: /nonexistent/k.pem, skip_verify: false}
            ports:
              master: {listen: "0.0.0.0:6432", roles: [leader], host_port: 5432, connect_timeout: 2}
              replicas:
                listen: "*:6433"
                roles: ["sync", "async", "replica"]
                max_lag_in_bytes: 16777216
          other:
            hosts: ["http://127.0.0.1:8011"]
            ports: {any: {listen: "localhost:7000", roles: [any]}}
        """;

    [Fact]
    public async Task LoadAndValidate_MutatedSamples_NeverThrowsAnythingButFormatExceptionOrHangs()
    {
        var samples = new[] { File.ReadAllText(Path.Combine(RepoRoot(), "patroni.yaml")), ConfigurationSamples.Minimal, Full }
            .Select(Encoding.UTF8.GetBytes).ToList();
        var mutator = Mutator.ForYaml(samples);

        await Mutator.RunAsync(Cases, TimeSpan.FromSeconds(2), seed => () =>
        {
            var provider = new YamlConfigurationProvider(new YamlConfigurationSource { Path = "fuzz.yaml", Optional = true });
            var configuration = new ConfigurationRoot([provider]);
            try
            {
                provider.Load(new MemoryStream(mutator.Next(seed)));
            }
            catch (FormatException ex)
            {
                Assert.StartsWith("fuzz.yaml: ", ex.Message);
                return;
            }
            var loaded = ProxyOptionsLoader.Load(configuration);
            Assert.True(loaded.Options is not null || loaded.Errors.Count > 0);
        });
    }

    [Fact]
    public void Parse_NestedDeeperThan64Levels_RejectedWithPlace()
    {
        var yaml = "clusters: " + new string('[', 100_000) + new string(']', 100_000) + "\n";

        var error = Assert.Throws<FormatException>(() => YamlConfigurationFileParser.Parse(new MemoryStream(Encoding.UTF8.GetBytes(yaml)), "deep.yaml"));

        Assert.StartsWith("deep.yaml: line 1, column ", error.Message);
        Assert.EndsWith("nested deeper than 64 levels", error.Message);
    }

    /// <summary>An alias inside the node it names: a cycle that was followed until the stack overflowed (found by the fuzz test).</summary>
    [Theory]
    [InlineData("a: &x\n  b: *x\n")]
    [InlineData("clusters: &x [1, *x]\n")]
    public void Parse_AliasInsideItsOwnNode_RejectedWithPlace(string yaml)
    {
        var error = Assert.Throws<FormatException>(() => YamlConfigurationFileParser.Parse(new MemoryStream(Encoding.UTF8.GetBytes(yaml)), "cycle.yaml"));

        Assert.StartsWith("cycle.yaml: line ", error.Message);
        Assert.Contains("nested deeper than 64 levels through aliases", error.Message);
    }

    [Fact]
    public void Parse_AliasesThatMultiply_RejectedInsteadOfExpanded()
    {
        // Each level holds ten aliases of the one before: 10^9 values if expanded.
        var yaml = new StringBuilder("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
        for (var i = 1; i <= 9; i++)
        {
            yaml.Append($"l{i}: &l{i} [{string.Join(", ", Enumerable.Repeat($"*l{i - 1}", 10))}]\n");
        }

        var error = Assert.Throws<FormatException>(() => YamlConfigurationFileParser.Parse(new MemoryStream(Encoding.UTF8.GetBytes(yaml.ToString())), "laughs.yaml"));

        Assert.Contains("more than 100000 values once aliases are expanded", error.Message);
    }

    [Fact]
    public void Parse_AliasOfASection_ExpandedAsACopy()
    {
        const string yaml = "defaults: &d\n  roles: [leader]\nclusters:\n  c:\n    ports:\n      master: *d\n";

        var data = YamlConfigurationFileParser.Parse(new MemoryStream(Encoding.UTF8.GetBytes(yaml)), "alias.yaml");

        Assert.Equal("leader", data["clusters:c:ports:master:roles:0"]);
    }

    private static string RepoRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "PatroniYarp.sln")))
            {
                return directory.FullName;
            }
        }
        throw new InvalidOperationException("no PatroniYarp.sln above the test output");
    }
}
