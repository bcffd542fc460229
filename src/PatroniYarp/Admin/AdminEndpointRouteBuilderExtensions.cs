using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using PatroniYarp.Configuration;
using PatroniYarp.HealthChecks;
using PatroniYarp.Patroni;
using PatroniYarp.Tcp;
using Yarp.ReverseProxy;

namespace PatroniYarp.Admin;

/// <summary>
/// patroni_proxy's admin API: GET / (liveness), GET /update_clusters (poll now), plus GET /clusters (what the proxy
/// knows and routes to) and GET /connections (open TCP sessions). Other paths are 404 and other methods on these paths 405, by ASP.NET Core routing.
/// Only /update_clusters causes work (a poll of every cluster), and it is rate-limited; with <c>admin_token</c> set,
/// every endpoint needs the bearer token. Expects <see cref="AdminHostingExtensions.AddAdminApi"/>.
/// </summary>
internal static partial class AdminEndpointRouteBuilderExtensions
{
    public static WebApplication MapAdminApi(this WebApplication app)
    {
        app.UseMiddleware<AdminTokenMiddleware>();
        app.UseRateLimiter();

        // The patroniglue frontend serves the health checks only; there the admin API does not exist.
        var admin = app.MapGroup("").WithMetadata(AdminEndpointMetadata.Instance).AddEndpointFilter(static (context, next) =>
            FrontendListenerFeature.IsFrontend(context.HttpContext) ? ValueTask.FromResult<object?>(Results.NotFound()) : next(context));
        admin.MapGet("/", () => Results.Text("OK"));
        admin.MapGet("/update_clusters", UpdateClustersAsync).RequireRateLimiting(AdminHostingExtensions.UpdateClustersPolicy);
        admin.MapGet("/clusters", GetClusters);
        admin.MapGet("/connections", GetConnections);

        var options = app.Services.GetRequiredService<IOptionsMonitor<ProxyOptions>>();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(AdminEndpointRouteBuilderExtensions).FullName!);
        WarnIfExposed(options.CurrentValue, logger);
        options.OnChange(changed => WarnIfExposed(changed, logger));
        return app;
    }

    /// <summary>The admin API shows the topology and sessions' client addresses: beyond loopback it wants a token.</summary>
    private static void WarnIfExposed(ProxyOptions options, ILogger logger)
    {
        if (string.IsNullOrEmpty(options.AdminToken)
            && ListenAddress.TryParse(options.EffectiveListenAddress, out var address)
            && !address.IsLoopback)
        {
            Log.AdminApiExposed(logger, options.EffectiveListenAddress);
        }
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
        [FromServices] IProxyStateLookup proxyState,
        [FromServices] SessionRegistry sessions,
        [FromServices] SpareBackends spares)
    {
        var report = ClustersReportBuilder.Build(options.CurrentValue, store.Clusters, proxyState, sessions, spares);
        return Results.Json(report, AdminJsonContext.Default.ClustersReport);
    }

    private static IResult GetConnections([FromServices] SessionRegistry sessions, [FromServices] TimeProvider time)
    {
        var now = time.GetUtcNow();
        var connections = sessions.Snapshot()
            .OrderBy(s => s.StartedAt)
            .Select(s => new ConnectionReport(
                s.Id, s.Port, s.Member, s.Client, s.Backend, s.StartedAt, (now - s.StartedAt).TotalSeconds, s.BytesIn, s.BytesOut))
            .ToList();
        return Results.Json(new ConnectionsReport(connections.Count, connections), AdminJsonContext.Default.ConnectionsReport);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1, Level = LogLevel.Warning,
            Message = "The admin API listens on {ListenAddress}, beyond loopback, and admin_token is not set: anyone who can reach it can read the topology and trigger polls")]
        public static partial void AdminApiExposed(ILogger logger, string listenAddress);
    }
}
