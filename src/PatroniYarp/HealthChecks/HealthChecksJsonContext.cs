using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace PatroniYarp.HealthChecks;

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(FailureBody))]
[JsonSerializable(typeof(ClusterCheckBody))]
internal sealed partial class HealthChecksJsonContext : JsonSerializerContext
{
    /// <summary>Bodies are read by people: quotes and non-ASCII names stay as they are rather than \u-escaped.</summary>
    public static HealthChecksJsonContext Readable { get; } = new(new JsonSerializerOptions
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });
}

/// <summary>GET /clusters/{cluster}/members/{member}/{check}: the answer and what it was decided on.</summary>
internal sealed record ClusterCheckBody(
    string Cluster,
    string Member,
    string Check,
    int Status,
    string Reason,
    string? Role,
    string? State,
    long? Lag,
    bool Stale);
