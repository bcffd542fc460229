namespace PatroniYarp.Diagnostics;

/// <summary>
/// <c>--healthcheck [URL]</c>: GETs the admin listener's /healthz and exits 0 on 2xx, else 1. The container's
/// HEALTHCHECK runs it, since the ASP.NET runtime image has neither curl nor wget.
/// </summary>
internal static class HealthProbe
{
    public const string Option = "--healthcheck";
    public const string DefaultUrl = "http://127.0.0.1:8009/healthz";

    public static async Task<int> RunAsync(IReadOnlyList<string> args, TextWriter output, TextWriter error)
    {
        var url = args.Count > 1 ? args[1] : DefaultUrl;
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
        {
            await error.WriteLineAsync($"PatroniYarp {Option}: '{url}' is not an http(s) URL");
            return 2;
        }
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        try
        {
            using var response = await http.GetAsync(uri);
            await output.WriteLineAsync($"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            return response.IsSuccessStatusCode ? 0 : 1;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            await error.WriteLineAsync($"PatroniYarp {Option}: {uri}: {ex.Message}");
            return 1;
        }
    }
}
