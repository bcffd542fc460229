using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text.Json;

namespace PatroniYarp.Patroni;

/// <summary>What one Patroni /cluster answer said, or why it was rejected whole.</summary>
/// <param name="Error">Null on success; otherwise names what is wrong, and nothing else of the answer may be used.</param>
/// <param name="SkippedMembers">Members left out because they had no host or port (e.g. a replica still being created).</param>
internal sealed record ClusterParseResult(
    IReadOnlyList<PatroniMember> Members,
    bool Paused,
    int SkippedMembers,
    string? Error)
{
    [MemberNotNullWhen(false, nameof(Error))]
    public bool IsSuccess => Error is null;

    public static ClusterParseResult Rejected(string error) => new([], false, 0, error);
}

/// <summary>
/// Parses Patroni's GET /cluster answer. Tolerant of what Patroni versions legitimately differ in (unknown fields,
/// tags as booleans/strings/numbers, lag as a number or "unknown", members without host or port) and strict about
/// what would make routing guess (not JSON, wrong types, out-of-range ports, duplicate names): such an answer is
/// rejected whole, so the caller keeps the last good state.
/// </summary>
internal static class ClusterJsonParser
{
    /// <summary>Largest answer accepted; a real cluster's answer is a few KiB.</summary>
    public const int DefaultMaxBytes = 1024 * 1024;

    private const int ReadChunkBytes = 16 * 1024;

    private static readonly IReadOnlyDictionary<string, string> EmptyTags = new Dictionary<string, string>();

    /// <summary>Reads and parses a body without ever holding more than <paramref name="maxBytes"/> + 1 bytes of it.</summary>
    /// <exception cref="OperationCanceledException">Only when <paramref name="cancellationToken"/> fires.</exception>
    public static Task<ClusterParseResult> ReadAsync(Stream body, int maxBytes, CancellationToken cancellationToken) =>
        ReadBoundedAsync(body, maxBytes, static (json, max) => Parse(json, max), TooLarge(maxBytes), cancellationToken);

    /// <summary>
    /// Reads a whole body (Patroni sends no Content-Length: it closes the connection) into a pooled buffer and parses it,
    /// never holding more than <paramref name="maxBytes"/> + 1 bytes; a longer body gives <paramref name="tooLarge"/>.
    /// </summary>
    internal static async Task<T> ReadBoundedAsync<T>(Stream body, int maxBytes, Func<ReadOnlyMemory<byte>, int, T> parse, T tooLarge,
        CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Min(maxBytes + 1, ReadChunkBytes));
        try
        {
            var length = 0;
            while (true)
            {
                if (length == buffer.Length)
                {
                    var larger = ArrayPool<byte>.Shared.Rent(Math.Min(buffer.Length * 2, maxBytes + 1));
                    buffer.AsSpan(0, length).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }
                // The pool may hand out a larger array than asked for: never read past the limit + 1.
                var room = Math.Min(buffer.Length, maxBytes + 1) - length;
                var read = await body.ReadAsync(buffer.AsMemory(length, room), cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }
                length += read;
                if (length > maxBytes)
                {
                    return tooLarge;
                }
            }
            return parse(buffer.AsMemory(0, length), maxBytes);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public static ClusterParseResult Parse(ReadOnlyMemory<byte> utf8Json, int maxBytes = DefaultMaxBytes)
    {
        if (utf8Json.Length > maxBytes)
        {
            return TooLarge(maxBytes);
        }
        try
        {
            using var document = JsonDocument.Parse(utf8Json);
            return ParseRoot(document.RootElement);
        }
        catch (JsonException ex)
        {
            return ClusterParseResult.Rejected($"not valid JSON: {ex.Message}");
        }
        catch (InvalidOperationException ex)
        {
            // A string that cannot be transcoded (e.g. a lone surrogate escape).
            return ClusterParseResult.Rejected($"not valid JSON text: {ex.Message}");
        }
    }

    internal static ClusterParseResult TooLarge(int maxBytes) =>
        ClusterParseResult.Rejected($"the answer is larger than {maxBytes} bytes");

    private static ClusterParseResult ParseRoot(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            return ClusterParseResult.Rejected($"the answer is a JSON {Describe(root.ValueKind)}, not an object");
        }
        if (!root.TryGetProperty("members", out var membersElement))
        {
            return ClusterParseResult.Rejected("'members' is missing");
        }
        if (membersElement.ValueKind != JsonValueKind.Array)
        {
            return ClusterParseResult.Rejected($"'members' is a {Describe(membersElement.ValueKind)}, not an array");
        }

        var members = new List<PatroniMember>(membersElement.GetArrayLength());
        var names = new HashSet<string>(StringComparer.Ordinal);
        var skipped = 0;
        var index = 0;
        foreach (var element in membersElement.EnumerateArray())
        {
            var where = $"members[{index++}]";
            if (element.ValueKind != JsonValueKind.Object)
            {
                return ClusterParseResult.Rejected($"{where} is a {Describe(element.ValueKind)}, not an object");
            }
            if (ParseMember(element, where, out var name, out var member) is { } error)
            {
                return ClusterParseResult.Rejected(error);
            }
            if (!names.Add(name))
            {
                return ClusterParseResult.Rejected($"member name '{name}' appears more than once");
            }
            if (member is null)
            {
                skipped++;
            }
            else
            {
                members.Add(member);
            }
        }

        var paused = root.TryGetProperty("pause", out var pause) && pause.ValueKind == JsonValueKind.True;
        return new ClusterParseResult(members, paused, skipped, null);
    }

    /// <summary>Returns an error for a broken member; otherwise sets <paramref name="member"/>, null when it has no address.</summary>
    private static string? ParseMember(JsonElement element, string where, out string name, out PatroniMember? member)
    {
        member = null;
        name = element.TryGetProperty("name", out var nameElement) && nameElement.ValueKind == JsonValueKind.String
            ? nameElement.GetString()!
            : "";
        if (name.Length == 0)
        {
            return $"{where}.name is missing or not a non-empty string";
        }
        where = $"member '{name}'";

        if (OptionalString(element, "role", where, out var role) is { } roleError)
        {
            return roleError;
        }
        if (OptionalString(element, "state", where, out var state) is { } stateError)
        {
            return stateError;
        }
        if (OptionalString(element, "host", where, out var host) is { } hostError)
        {
            return hostError;
        }

        int? port = null;
        if (element.TryGetProperty("port", out var portElement) && portElement.ValueKind != JsonValueKind.Null)
        {
            if (portElement.ValueKind != JsonValueKind.Number || !portElement.TryGetInt64(out var portValue))
            {
                return $"{where}: port is not an integer";
            }
            if (portValue is < 1 or > 65535)
            {
                return $"{where}: port {portValue} is outside 1-65535";
            }
            port = (int)portValue;
        }

        if (string.IsNullOrEmpty(host) || port is null)
        {
            return null;
        }

        member = new PatroniMember(
            name,
            ParseRole(role),
            state ?? "",
            host,
            port.Value,
            element.TryGetProperty("api_url", out var apiUrl) && apiUrl.ValueKind == JsonValueKind.String ? apiUrl.GetString() : null,
            OptionalInteger(element, "timeline"),
            OptionalInteger(element, "lag"),
            ParseTags(element));
        return null;
    }

    private static string? OptionalString(JsonElement element, string property, string where, out string? value)
    {
        value = null;
        if (!element.TryGetProperty(property, out var found) || found.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        if (found.ValueKind != JsonValueKind.String)
        {
            return $"{where}: {property} is a {Describe(found.ValueKind)}, not a string";
        }
        value = found.GetString();
        return null;
    }

    /// <summary>A whole number, or null for anything else ("unknown", absent, fractional): unknown is never guessed.</summary>
    private static long? OptionalInteger(JsonElement element, string property) =>
        element.TryGetProperty(property, out var found) && found.ValueKind == JsonValueKind.Number && found.TryGetInt64(out var value)
            ? value
            : null;

    private static MemberRole ParseRole(string? role) => role switch
    {
        // "master" is what Patroni before 3.0 reported for the leader.
        "leader" or "master" => MemberRole.Leader,
        "standby_leader" => MemberRole.StandbyLeader,
        "sync_standby" => MemberRole.SyncStandby,
        "quorum_standby" => MemberRole.QuorumStandby,
        "replica" => MemberRole.Replica,
        _ => MemberRole.Unknown,
    };

    private static IReadOnlyDictionary<string, string> ParseTags(JsonElement element)
    {
        if (!element.TryGetProperty("tags", out var tags) || tags.ValueKind != JsonValueKind.Object)
        {
            return EmptyTags;
        }
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var tag in tags.EnumerateObject())
        {
            var text = tag.Value.ValueKind switch
            {
                JsonValueKind.String => tag.Value.GetString(),
                JsonValueKind.True => "true",
                JsonValueKind.False => "false",
                JsonValueKind.Number => tag.Value.GetRawText(),
                JsonValueKind.Null => null,
                _ => tag.Value.GetRawText(),
            };
            if (text is not null)
            {
                result[tag.Name] = text;
            }
        }
        return result;
    }

    private static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.True or JsonValueKind.False => "boolean",
        _ => kind.ToString().ToLower(CultureInfo.InvariantCulture),
    };
}
