using System.ComponentModel;
using System.Text.Json;

namespace PatroniYarp.HealthChecks;

/// <summary>
/// One check's answer as the client gets it: Patroni's status, content type and body, or PatroniYarp's own when
/// Patroni could not answer (<see cref="BackendState"/> says why). Immutable, so the cache hands out one instance.
/// </summary>
/// <param name="BackendState">
/// Null for Patroni's own answer; else the value of <see cref="BackendHeader"/>: timeout, error, stale or unknown.
/// </param>
[ImmutableObject(true)]
internal sealed record CheckAnswer(int Status, string? ContentType, ReadOnlyMemory<byte> Body, string? BackendState)
{
    /// <summary>Set when the answer is not Patroni's own, so that "not primary" and "no answer" can be told apart.</summary>
    public const string BackendHeader = "X-PatroniYarp-Backend";

    public const string Timeout = "timeout";
    public const string Error = "error";
    public const string Stale = "stale";

    /// <summary>A 503 of PatroniYarp's own, with a JSON body saying what happened.</summary>
    public static CheckAnswer Failure(string state, string message) =>
        new(StatusCodes.Status503ServiceUnavailable, "application/json",
            JsonSerializer.SerializeToUtf8Bytes(new FailureBody(message, state), HealthChecksJsonContext.Readable.FailureBody), state);

    /// <summary>GET gets the body; HEAD and OPTIONS (HAProxy's httpchk) only the status, as Patroni does.</summary>
    public Task WriteAsync(HttpContext context)
    {
        var response = context.Response;
        response.StatusCode = Status;
        if (BackendState is not null)
        {
            response.Headers[BackendHeader] = BackendState;
        }
        // The same answer serves every client within the ttl; no one should cache it longer.
        response.Headers.CacheControl = "no-store";
        if (!HttpMethods.IsGet(context.Request.Method))
        {
            response.ContentLength = 0;
            return Task.CompletedTask;
        }
        if (ContentType is not null)
        {
            response.ContentType = ContentType;
        }
        response.ContentLength = Body.Length;
        return response.Body.WriteAsync(Body).AsTask();
    }
}

internal sealed record FailureBody(string Error, string Backend);
