using System.Globalization;
using System.Net;

namespace PatroniYarp.Tcp;

/// <summary>
/// A patroni_proxy <c>listen</c> value (host:port) turned into the URL Kestrel's configuration loader binds.
/// Kestrel's config endpoints must be http:// even for raw TCP: the connection handler ends the pipeline first.
/// </summary>
internal static class ListenAddress
{
    /// <summary>
    /// Accepts "0.0.0.0:6432", "127.0.0.1:6432", "[::1]:6432", "[::]:6432", "*:6432" (all interfaces),
    /// "localhost:6432" (both loopbacks) and ":6432" (all interfaces).
    /// </summary>
    public static bool TryToKestrelUrl(string? listen, out string url, out string error)
    {
        url = "";
        var text = listen?.Trim() ?? "";
        string host;
        ReadOnlySpan<char> portText;

        if (text.StartsWith('['))
        {
            var close = text.IndexOf(']');
            if (close < 0 || close + 1 >= text.Length || text[close + 1] != ':')
            {
                error = $"'{listen}' is not [ipv6]:port";
                return false;
            }
            host = text[1..close];
            portText = text.AsSpan(close + 2);
            if (!IPAddress.TryParse(host, out var v6) || v6.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6)
            {
                error = $"'{listen}' has no valid IPv6 address in brackets";
                return false;
            }
            host = $"[{host}]";
        }
        else
        {
            var colon = text.LastIndexOf(':');
            if (colon < 0 || text.IndexOf(':') != colon)
            {
                error = $"'{listen}' is not host:port (write IPv6 addresses in brackets, e.g. [::1]:6432)";
                return false;
            }
            host = colon == 0 ? "*" : text[..colon];
            portText = text.AsSpan(colon + 1);
        }

        if (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port > IPEndPoint.MaxPort)
        {
            error = $"'{listen}' has no valid port";
            return false;
        }

        url = string.Create(CultureInfo.InvariantCulture, $"http://{host}:{port}");
        error = "";
        return true;
    }
}
