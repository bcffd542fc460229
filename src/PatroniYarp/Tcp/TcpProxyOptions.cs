namespace PatroniYarp.Tcp;

/// <summary>Tuning of the TCP proxy that patroni_proxy's YAML has no key for (set in code, e.g. by tests).</summary>
internal sealed record TcpProxyOptions
{
    /// <summary>How long a destination whose connect was refused or timed out stays out of the balancer's choice.</summary>
    public TimeSpan FailedDestinationReactivationPeriod { get; init; } = TimeSpan.FromSeconds(5);
}
