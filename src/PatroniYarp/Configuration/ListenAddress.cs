using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace PatroniYarp.Configuration;

/// <summary>
/// A <c>host:port</c> to listen on: an IPv4 address, a bracketed IPv6 address (<c>[::1]:6432</c>), a host name
/// (<c>localhost:6432</c>) or <c>*</c> for every address; the port is 1–65535. IPv6 hosts are kept without brackets.
/// </summary>
internal readonly record struct ListenAddress(string Host, int Port)
{
    public const string Wildcard = "*";

    /// <summary>Listens on every address: <c>*</c>, <c>0.0.0.0</c> or <c>[::]</c>.</summary>
    public bool IsWildcard => Host == Wildcard || IPAddress.TryParse(Host, out var ip) && (ip.Equals(IPAddress.Any) || ip.Equals(IPAddress.IPv6Any));

    /// <summary>Reachable only from this machine: <c>localhost</c> or a loopback address.</summary>
    public bool IsLoopback => Host == "localhost" || IPAddress.TryParse(Host, out var ip) && IPAddress.IsLoopback(ip);

    public static bool TryParse(string? text, out ListenAddress address)
    {
        address = default;
        text = text?.Trim();
        if (string.IsNullOrEmpty(text))
        {
            return false;
        }

        string host;
        string port;
        if (text.StartsWith('['))
        {
            var close = text.IndexOf("]:", StringComparison.Ordinal);
            if (close < 0 || !IPAddress.TryParse(text[1..close], out var ip) || ip.AddressFamily != AddressFamily.InterNetworkV6)
            {
                return false;
            }
            host = text[1..close];
            port = text[(close + 2)..];
        }
        else
        {
            var colon = text.LastIndexOf(':');
            if (colon <= 0)
            {
                return false;
            }
            host = text[..colon];
            port = text[(colon + 1)..];
            // An IPv6 address needs brackets; otherwise "::1:6432" could mean two different things.
            if (host != Wildcard && Uri.CheckHostName(host) is not (UriHostNameType.Dns or UriHostNameType.IPv4))
            {
                return false;
            }
        }

        if (!int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out var number) || number is < 1 or > 65535)
        {
            return false;
        }
        address = new ListenAddress(host.ToLowerInvariant(), number);
        return true;
    }

    /// <summary>
    /// Whether both cannot be bound at once: same port and the same host, a wildcard on either side, or
    /// <c>localhost</c> against a loopback address (Kestrel binds localhost to 127.0.0.1 and [::1]).
    /// </summary>
    public bool ClashesWith(ListenAddress other) =>
        Port == other.Port && (IsWildcard || other.IsWildcard || SameHost(this, other) || LocalhostAndLoopback(this, other) || LocalhostAndLoopback(other, this));

    public override string ToString() => Host.Contains(':') ? $"[{Host}]:{Port}" : $"{Host}:{Port}";

    /// <summary>The URL Kestrel's configuration loader binds; http:// even for raw TCP ports, whose handler ends the pipeline first.</summary>
    public string ToKestrelUrl() => $"http://{this}";

    private static bool SameHost(ListenAddress a, ListenAddress b) =>
        a.Host == b.Host || IPAddress.TryParse(a.Host, out var x) && IPAddress.TryParse(b.Host, out var y) && x.Equals(y);

    private static bool LocalhostAndLoopback(ListenAddress a, ListenAddress b) =>
        a.Host == "localhost" && IPAddress.TryParse(b.Host, out var ip) && IPAddress.IsLoopback(ip);
}
