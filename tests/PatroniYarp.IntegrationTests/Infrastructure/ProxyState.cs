namespace PatroniYarp.IntegrationTests.Infrastructure;

/// <summary>Reads what a running PatroniYarp routes to, from its admin API's /clusters.</summary>
internal static class ProxyState
{
    /// <summary>Member names a port of cluster "demo" routes new sessions to now.</summary>
    public static async Task<IReadOnlyList<string>> DestinationsAsync(PatroniYarpProcess proxy, string port)
    {
        var json = await proxy.GetJsonAsync("/clusters");
        return json.GetProperty("clusters").GetProperty("demo").GetProperty("ports").GetProperty(port)
            .GetProperty("destinations").EnumerateArray()
            .Where(d => d.GetProperty("available").GetBoolean())
            .Select(d => d.GetProperty("member").GetString()!)
            .Order(StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>Waits until <paramref name="port"/> routes to exactly <paramref name="members"/>.</summary>
    public static Task WaitForDestinationsAsync(PatroniYarpProcess proxy, string port, IEnumerable<string> members, TimeSpan? timeout = null)
    {
        var expected = members.Order(StringComparer.Ordinal).ToList();
        return Eventually.UntilAsync(
            async () => (await DestinationsAsync(proxy, port)).SequenceEqual(expected),
            timeout ?? TimeSpan.FromSeconds(30),
            $"port {port} to route to [{string.Join(", ", expected)}]");
    }

    /// <summary>Waits until <paramref name="port"/> of cluster "demo" has a spare connection (preconnect) open to <paramref name="member"/>.</summary>
    public static Task WaitForSpareAsync(PatroniYarpProcess proxy, string port, string member) =>
        Eventually.UntilAsync(
            async () => (await proxy.GetJsonAsync("/clusters")).GetProperty("clusters").GetProperty("demo").GetProperty("ports")
                .GetProperty(port).GetProperty("destinations").EnumerateArray()
                .Any(d => d.GetProperty("member").GetString() == member && d.GetProperty("spares").GetInt32() > 0),
            TimeSpan.FromSeconds(20), $"a spare of port {port} on {member}");

    /// <summary>Waits until cluster "demo" has a port named <paramref name="port"/> (a reload added it).</summary>
    public static Task WaitForPortAsync(PatroniYarpProcess proxy, string port, string what) =>
        Eventually.UntilAsync(
            async () => (await proxy.GetJsonAsync("/clusters")).GetProperty("clusters").GetProperty("demo").GetProperty("ports").TryGetProperty(port, out _),
            TimeSpan.FromSeconds(20), what);
}
