using System.Text.Json;
using PatroniYarp.Patroni;
using PatroniYarp.Routing;
using Yarp.ReverseProxy.Model;

namespace PatroniYarp.HealthChecks;

/// <summary>
/// YARP proxy-pipeline step for the health-check routes (<see cref="HealthCheckRoutes"/>): sidecar checks are answered
/// through <see cref="SidecarCheckClient"/> (cache, single call to Patroni, timeout), cluster-mode checks from the
/// <see cref="ClusterStateStore"/> with Patroni's rules. Other routes pass on.
/// </summary>
internal sealed class HealthCheckMiddleware(RequestDelegate next, SidecarCheckClient sidecar, ClusterStateStore store)
{
    public async Task InvokeAsync(HttpContext context)
    {
        var proxy = context.GetReverseProxyFeature();
        if (proxy.Route.Config.Metadata?.GetValueOrDefault(HealthCheckRoutes.ModeKey) is not { } mode)
        {
            await next(context);
            return;
        }
        var answer = mode == HealthCheckRoutes.SidecarMode
            ? await sidecar.GetAsync(context, proxy)
            : AnswerFromClusterState(context);
        await answer.WriteAsync(context);
    }

    private CheckAnswer AnswerFromClusterState(HttpContext context)
    {
        var clusterName = (string)context.GetRouteValue("cluster")!;
        var memberName = (string)context.GetRouteValue("member")!;
        var check = (string)context.GetRouteValue("check")!;
        if (!PatroniChecks.IsKnown(check))
        {
            return NotFound($"unknown check '{check}' (expected one of {string.Join(", ", PatroniChecks.All)})");
        }
        if (!store.Clusters.TryGetValue(clusterName, out var state))
        {
            return NotFound($"unknown cluster '{clusterName}'");
        }

        // Never vouch for a member from an outdated picture: a former leader may have been demoted since.
        if (state.IsStale || state.Snapshot is null)
        {
            return Answer(clusterName, memberName, check, new ClusterCheckResult(ClusterCheckEvaluator.Unavailable,
                $"cluster state is stale: {state.LastError ?? "not polled yet"}"), member: null, stale: true);
        }
        var member = state.Snapshot.Members.FirstOrDefault(m => m.Name == memberName);
        var result = member is null
            ? new ClusterCheckResult(ClusterCheckEvaluator.Unavailable, $"member '{memberName}' is not in the cluster")
            : ClusterCheckEvaluator.Evaluate(check, member, PatroniQuery.Parse(context.Request.QueryString.Value));
        return Answer(clusterName, memberName, check, result, member, stale: false);
    }

    private static CheckAnswer Answer(string cluster, string memberName, string check, ClusterCheckResult result, PatroniMember? member, bool stale)
    {
        var body = new ClusterCheckBody(cluster, memberName, check, result.Status, result.Reason,
            member is null ? null : PatroniProxyConfigProvider.RoleName(member.Role), member?.State, member?.LagBytes, stale);
        return new CheckAnswer(result.Status, "application/json",
            JsonSerializer.SerializeToUtf8Bytes(body, HealthChecksJsonContext.Readable.ClusterCheckBody), stale ? CheckAnswer.Stale : null);
    }

    private static CheckAnswer NotFound(string message) =>
        CheckAnswer.Failure(CheckAnswer.Error, message) with { Status = StatusCodes.Status404NotFound };
}
