namespace PatroniYarp.HealthChecks;

/// <summary>The Patroni REST API checks PatroniYarp serves, by their path segment.</summary>
internal static class PatroniChecks
{
    /// <summary>Every check path of Patroni's REST API that a load balancer asks (HAProxy's httpchk targets).</summary>
    public static readonly IReadOnlyList<string> All =
    [
        "primary", "master", "leader", "read-write", "standby-leader",
        "replica", "read-only", "synchronous", "sync", "read-only-sync",
        "quorum", "read-only-quorum", "asynchronous", "async",
        "health", "liveness", "readiness",
    ];

    public static bool IsKnown(string check) => All.Contains(check, StringComparer.Ordinal);
}
