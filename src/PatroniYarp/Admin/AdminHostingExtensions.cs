using System.Threading.RateLimiting;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using PatroniYarp.HealthChecks;

namespace PatroniYarp.Admin;

internal static class AdminHostingExtensions
{
    /// <summary>The rate-limiting policy of GET /update_clusters.</summary>
    public const string UpdateClustersPolicy = "update_clusters";

    /// <summary>
    /// Admin API hardening: small Kestrel request limits (no admin endpoint reads a body, and none needs large
    /// headers) and a rate limit on the only endpoint that causes work elsewhere, so that it cannot flood Patroni.
    /// Kestrel's limits are server-wide; the raw TCP ports never reach HTTP parsing, so they are not affected.
    /// </summary>
    public static WebApplicationBuilder AddAdminApi(this WebApplicationBuilder builder)
    {
        builder.Services.Configure<KestrelServerOptions>(static kestrel =>
        {
            var limits = kestrel.Limits;
            limits.MaxRequestBodySize = 1024;
            limits.MaxRequestLineSize = 2 * 1024;
            limits.MaxRequestHeadersTotalSize = 8 * 1024;
            limits.MaxRequestHeaderCount = 32;
            limits.RequestHeadersTimeout = TimeSpan.FromSeconds(10);
        });
        builder.Services.AddRateLimiter(static limiter =>
        {
            limiter.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            // One global window, not per client: what is protected is the Patroni API behind every poll. Requests on the
            // health-check frontend (where the admin API answers 404) must not use up its permits.
            limiter.AddPolicy(UpdateClustersPolicy, static context => FrontendListenerFeature.IsFrontend(context)
                ? RateLimitPartition.GetNoLimiter("frontend")
                : RateLimitPartition.GetFixedWindowLimiter("admin", static _ => new FixedWindowRateLimiterOptions
                {
                    PermitLimit = 1,
                    Window = TimeSpan.FromSeconds(1),
                    QueueLimit = 2,
                    QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
                }));
        });
        return builder;
    }
}
