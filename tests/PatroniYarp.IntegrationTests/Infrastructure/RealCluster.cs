namespace PatroniYarp.IntegrationTests.Infrastructure;

/// <summary>
/// The real Patroni cluster of scripts/patroni-cluster.sh, brought up once for every test of the collection.
/// Tests run one after another (one collection): they switch over, stop members and change tags on one cluster.
/// </summary>
public sealed class RealClusterFixture : IAsyncLifetime
{
    internal PatroniClusterScript Cluster { get; } = new();

    public async Task InitializeAsync() => await Cluster.UpAsync();

    public Task DisposeAsync() => Task.CompletedTask;
}

[CollectionDefinition(Name)]
public sealed class RealClusterCollection : ICollectionFixture<RealClusterFixture>
{
    public const string Name = "real Patroni cluster";
}

/// <summary>PatroniYarp configurations for the tests, in patroni_proxy's YAML.</summary>
internal static class TestYaml
{
    /// <summary>The demo cluster's Patroni REST APIs, as a YAML flow list.</summary>
    public static string Hosts(params string[] extraFirst) =>
        "[" + string.Join(", ", extraFirst.Concat(PatroniClusterScript.ApiUrls).Select(h => $"\"{h}\"")) + "]";

    /// <summary>One cluster "demo" polled every second, with the given ports (each a YAML block, indented 6).</summary>
    public static string Config(int adminPort, string ports, string? hosts = null, double interval = 1) => $"""
        cluster_update_interval: {interval}
        listen_address: "127.0.0.1:{adminPort}"
        clusters:
          demo:
            hosts: {hosts ?? Hosts()}
            ports:
        {ports}
        """;

    public static string Port(string name, int listen, string roles, string extra = "") => $"""
              {name}:
                listen: "127.0.0.1:{listen}"
                roles: [{roles}]
        {(extra.Length == 0 ? "" : "        " + extra + "\n")}
        """;
}
