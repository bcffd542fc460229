namespace PatroniYarp.Tests.Configuration;

internal static class ConfigurationSamples
{
    /// <summary>The smallest valid configuration: one cluster, one port.</summary>
    public const string Minimal = """
        cluster_update_interval: 3
        clusters:
          main:
            hosts: ["http://127.0.0.1:8008"]
            ports:
              master: {listen: "127.0.0.1:6432", roles: [leader]}
        """;
}
