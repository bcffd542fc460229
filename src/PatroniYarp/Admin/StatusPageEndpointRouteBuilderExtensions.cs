using PatroniYarp.Diagnostics;

namespace PatroniYarp.Admin;

/// <summary>GET /ui: one self-contained HTML page that polls GET /clusters every 2 s (no external assets, no build step).</summary>
internal static class StatusPageEndpointRouteBuilderExtensions
{
    private const string ResourceName = "PatroniYarp.Admin.StatusPage.html";

    // Inline script and style only, talking to this origin only: nothing can be loaded from elsewhere.
    private const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'";

    public static IEndpointRouteBuilder MapStatusPage(this IEndpointRouteBuilder endpoints)
    {
        var page = LoadPage();
        endpoints.MapGet("/ui", (HttpContext context) =>
        {
            context.Response.Headers.ContentSecurityPolicy = ContentSecurityPolicy;
            context.Response.Headers.CacheControl = "no-cache";
            return Results.Bytes(page, "text/html; charset=utf-8");
        }).RequireAdminListener();
        return endpoints;
    }

    private static byte[] LoadPage()
    {
        using var stream = typeof(StatusPageEndpointRouteBuilderExtensions).Assembly.GetManifestResourceStream(ResourceName)
            ?? throw new InvalidOperationException($"embedded resource {ResourceName} is missing");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}
