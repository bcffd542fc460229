using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using PatroniYarp.Configuration;
using PatroniYarp.HealthChecks;

namespace PatroniYarp.Admin;

/// <summary>Marks the admin API's endpoints (the health checks, served by the same host, stay open to load balancers).</summary>
internal sealed class AdminEndpointMetadata
{
    public static AdminEndpointMetadata Instance { get; } = new();
}

/// <summary>
/// When <c>admin_token</c> is set, admin endpoints answer 401 unless the request carries
/// <c>Authorization: Bearer &lt;admin_token&gt;</c>. Runs after routing (it needs the endpoint) and before rate
/// limiting, so unauthenticated requests cannot use up /update_clusters' permits. On the health-check frontend the
/// admin API answers 404 whatever the token.
/// </summary>
internal sealed class AdminTokenMiddleware(RequestDelegate next, IOptionsMonitor<ProxyOptions> options)
{
    private const string Scheme = "Bearer ";

    public Task InvokeAsync(HttpContext context)
    {
        if (context.GetEndpoint()?.Metadata.GetMetadata<AdminEndpointMetadata>() is null
            || FrontendListenerFeature.IsFrontend(context)
            || options.CurrentValue.AdminToken is not { Length: > 0 } token
            || IsAuthorized(context.Request.Headers.Authorization.ToString(), token))
        {
            return next(context);
        }
        context.Response.StatusCode = StatusCodes.Status401Unauthorized;
        context.Response.Headers[HeaderNames.WWWAuthenticate] = "Bearer";
        return Task.CompletedTask;
    }

    internal static bool IsAuthorized(string authorization, string token)
    {
        if (!authorization.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }
        // Hashing first gives equal lengths, so the comparison's time says nothing about the token, not even its length.
        var presented = SHA256.HashData(Encoding.UTF8.GetBytes(authorization[Scheme.Length..].Trim()));
        var expected = SHA256.HashData(Encoding.UTF8.GetBytes(token));
        return CryptographicOperations.FixedTimeEquals(presented, expected);
    }
}
