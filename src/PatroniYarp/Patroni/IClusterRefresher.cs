namespace PatroniYarp.Patroni;

/// <summary>Polls clusters now instead of waiting for the next interval (admin /update_clusters, unstable clusters).</summary>
internal interface IClusterRefresher
{
    /// <summary>Polls every configured cluster once, in parallel, and says which succeeded and which failed why.</summary>
    Task<ClusterRefreshResult> RefreshAllAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Asks for a poll of one cluster as soon as possible (e.g. a connect to its leader was refused) and polls it fast
    /// until it is stable again. Returns at once; calls made while a poll runs fold into one more poll. Unknown
    /// clusters are ignored.
    /// </summary>
    void RequestPoll(string cluster);
}

/// <param name="Updated">Clusters whose poll succeeded.</param>
/// <param name="Failed">Clusters whose poll failed on every host, with the reason.</param>
internal sealed record ClusterRefreshResult(IReadOnlyList<string> Updated, IReadOnlyDictionary<string, string> Failed);
