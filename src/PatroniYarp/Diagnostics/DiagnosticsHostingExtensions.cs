using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;
using PatroniYarp.Admin;
using PatroniYarp.Configuration;
using PatroniYarp.Patroni;

namespace PatroniYarp.Diagnostics;

/// <summary>
/// Metrics (OpenTelemetry, scraped in Prometheus text at /metrics), process health checks (/healthz, /healthz/live)
/// and the topology change log. /metrics and /ui are served on the admin listener only.
/// </summary>
internal static class DiagnosticsHostingExtensions
{
    /// <summary>Health checks that say whether the process itself works (the liveness probe): not the clusters.</summary>
    public const string LiveTag = "live";

    /// <summary>
    /// The instruments and the topology change log, which the TCP proxy records into (it calls this itself). The state
    /// store is the discovery's (AddPatroniDiscovery); added here only when absent, so the TCP proxy also runs alone.
    /// </summary>
    public static IServiceCollection AddProxyMetrics(this IServiceCollection services)
    {
        services.AddMetrics();
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<ClusterStateStore>();
        services.TryAddSingleton<ProxyMetrics>();
        services.TryAddSingleton<TopologyChangeLog>();
        return services;
    }

    /// <summary>The Prometheus exporter and the health checks, on top of <see cref="AddProxyMetrics"/>.</summary>
    public static WebApplicationBuilder AddPatroniYarpDiagnostics(this WebApplicationBuilder builder)
    {
        var services = builder.Services.AddProxyMetrics();
        // System.Runtime: .NET's own CPU, memory, GC and thread pool instruments, next to ours.
        services.AddOpenTelemetry().WithMetrics(static metrics => metrics
            .AddMeter(ProxyMetrics.MeterName, "System.Runtime")
            .AddPrometheusExporter());
        services.AddHealthChecks()
            .AddCheck<ConfigurationHealthCheck>("configuration", tags: [LiveTag])
            .AddCheck<ClusterPollHealthCheck>("clusters");
        return builder;
    }

    /// <summary>GET /metrics, GET /healthz (configuration and clusters: readiness) and /healthz/live (liveness).</summary>
    public static WebApplication MapDiagnostics(this WebApplication app)
    {
        app.UseAdminListenerOnly();
        // Metrics name members, ports and clients' load: behind admin_token like the admin API (Prometheus sends it as
        // `authorization: {credentials: ...}`). /healthz stays open for probes, which then learn only ready or not.
        app.MapPrometheusScrapingEndpoint("/metrics").RequireAdminListener().WithMetadata(AdminEndpointMetadata.Instance);
        // Process health on every HTTP listener: the patroniglue frontend may run without an admin listener.
        app.MapHealthChecks("/healthz", new HealthCheckOptions { ResponseWriter = WriteHealthJsonAsync });
        app.MapHealthChecks("/healthz/live", new HealthCheckOptions
        {
            Predicate = static check => check.Tags.Contains(LiveTag),
            ResponseWriter = WriteHealthJsonAsync,
        });
        return app;
    }

    /// <summary>Marks endpoints that answer on the admin listener only (not on any other HTTP listener, e.g. health checks).</summary>
    public static TBuilder RequireAdminListener<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(AdminListenerOnly.Instance);

    /// <summary>404 for endpoints marked <see cref="RequireAdminListener{TBuilder}"/> reached through another port.</summary>
    private static void UseAdminListenerOnly(this WebApplication app)
    {
        var options = app.Services.GetRequiredService<IOptionsMonitor<ProxyOptions>>();
        app.Use((context, next) =>
        {
            if (context.GetEndpoint()?.Metadata.GetMetadata<AdminListenerOnly>() is null
                || IsAdminListener(context.Connection, options.CurrentValue))
            {
                return next(context);
            }
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return Task.CompletedTask;
        });
    }

    // An in-memory test server has no local address: it is the admin API.
    private static bool IsAdminListener(ConnectionInfo connection, ProxyOptions options) =>
        connection.LocalIpAddress is null
        || ListenAddress.TryParse(options.EffectiveListenAddress, out var admin) && admin.Port == connection.LocalPort;

    /// <summary>
    /// {"status": "Degraded", "checks": {"clusters": {"status", "description", "data": {cluster: why}}}}. With
    /// admin_token set, a request without it (a probe) gets the status only: the checks name clusters and hosts.
    /// </summary>
    private static async Task WriteHealthJsonAsync(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "application/json; charset=utf-8";
        context.Response.Headers.CacheControl = "no-store";
        await using var json = new Utf8JsonWriter(context.Response.Body, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteString("status", report.Status.ToString());
        var token = context.RequestServices.GetRequiredService<IOptionsMonitor<ProxyOptions>>().CurrentValue.AdminToken;
        if (token is { Length: > 0 } && !AdminTokenMiddleware.IsAuthorized(context.Request.Headers.Authorization.ToString(), token))
        {
            json.WriteEndObject();
            return;
        }
        json.WriteNumber("duration_ms", Math.Round(report.TotalDuration.TotalMilliseconds, 3));
        json.WriteStartObject("checks");
        foreach (var (name, entry) in report.Entries)
        {
            json.WriteStartObject(name);
            json.WriteString("status", entry.Status.ToString());
            json.WriteString("description", entry.Description);
            if (entry.Exception is { } exception)
            {
                json.WriteString("error", exception.Message);
            }
            if (entry.Data.Count > 0)
            {
                json.WriteStartObject("data");
                foreach (var (key, value) in entry.Data)
                {
                    json.WriteString(key, value?.ToString());
                }
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }
        json.WriteEndObject();
        json.WriteEndObject();
    }

    private sealed class AdminListenerOnly
    {
        public static readonly AdminListenerOnly Instance = new();
    }
}
