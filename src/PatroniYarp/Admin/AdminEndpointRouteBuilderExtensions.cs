using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using PatroniYarp.Configuration;
using PatroniYarp.Patroni;
using Yarp.ReverseProxy;

namespace PatroniYarp.Admin;

/// <summary>
/// patroni_proxy's admin API: GET / (liveness), GET /update_clusters (poll now), plus GET /clusters (what the proxy
/// knows and routes to). Other paths are 404 and other methods on these paths 405, by ASP.NET Core routing.
/// </summary>
internal static class AdminEndpointRouteBuilderExtensions
{
    public static IEndpointRouteBuilder MapAdminApi(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet("/", () => Results.Text("OK"));
        endpoints.MapGet("/update_clusters", UpdateClustersAsync);
        endpoints.MapGet("/clusters", GetClusters);
        return endpoints;
    }

    /// <summary>
    /// 200 when every cluster was polled; unlike patroni_proxy, 503 when any failed, naming it and why, so that
    /// scripts can tell.
    /// </summary>
    private static async Task<IResult> UpdateClustersAsync([FromServices] IClusterRefresher refresher, CancellationToken cancellationToken)
    {
        var result = await refresher.RefreshAllAsync(cancellationToken);
        var report = new UpdateClustersReport(
            [.. result.Updated.Order(StringComparer.Ordinal)],
            new SortedDictionary<string, string>(result.Failed.ToDictionary(), StringComparer.Ordinal));
        return Results.Json(
            report,
            AdminJsonContext.Default.UpdateClustersReport,
            statusCode: result.Failed.Count == 0 ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable);
    }

    private static IResult GetClusters(
        [FromServices] IOptionsMonitor<ProxyOptions> options,
        [FromServices] ClusterStateStore store,
        [FromServices] IProxyStateLookup proxyState)
    {
        var report = ClustersReportBuilder.Build(options.CurrentValue, store.Clusters, proxyState);
        return Results.Json(report, AdminJsonContext.Default.ClustersReport);
    }
}
