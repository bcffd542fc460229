using System.Globalization;
using System.Net;

namespace PatroniYarp.Tcp;

/// <summary>Reads a YARP destination address of a TCP port ("tcp://host:port", IPv6 in brackets) as a socket endpoint.</summary>
internal static class DestinationAddress
{
    private const string Scheme = "tcp://";

    public static bool TryParse(string? address, out EndPoint endPoint)
    {
        endPoint = null!;
        var text = address.AsSpan().Trim();
        if (text.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase))
        {
            text = text[Scheme.Length..];
        }
        text = text.TrimEnd('/');

        // IPEndPoint parsing takes a bare address as port 0: a destination without a port is refused.
        if (IPEndPoint.TryParse(text, out var ip))
        {
            endPoint = ip;
            return ip.Port != 0;
        }

        var colon = text.LastIndexOf(':');
        if (colon <= 0 || text[..colon].Contains(':')
            || !int.TryParse(text[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var port)
            || port is 0 or > IPEndPoint.MaxPort)
        {
            return false;
        }

        endPoint = new DnsEndPoint(text[..colon].ToString(), port);
        return true;
    }
}
