namespace PatroniYarp.Routing;

/// <summary>
/// Names shared by the YARP configuration PatroniYarp publishes and the code that reads YARP's state back.
/// One YARP cluster per configured port: its destinations are the Patroni members eligible for that port.
/// </summary>
internal static class ProxyClusterIds
{
    /// <summary>YARP cluster id of a configured port, e.g. "main/master".</summary>
    public static string ForPort(string cluster, string port) => $"{cluster}/{port}";

    /// <summary>URI scheme of the destinations that carry PostgreSQL sessions (raw TCP, not HTTP).</summary>
    public const string TcpScheme = "tcp";

    /// <summary>Destination address of a PostgreSQL endpoint, e.g. tcp://10.0.0.1:5432 or tcp://[::1]:5432.</summary>
    public static string TcpAddress(string host, int port)
    {
        // UriBuilder brackets IPv6 literals; a host that already has brackets is left as it is.
        var builder = new UriBuilder(TcpScheme, host.Trim('[', ']'), port);
        return builder.Uri.GetComponents(UriComponents.SchemeAndServer, UriFormat.UriEscaped);
    }

    /// <summary>
    /// Reads a tcp:// destination address back into a host (IPv6 without brackets, ready for DNS or IPAddress.Parse)
    /// and a port. False for other schemes (the HTTP check destinations) and for malformed text.
    /// </summary>
    public static bool TryParseTcpAddress(string? address, out string host, out int port)
    {
        host = "";
        port = 0;
        if (!Uri.TryCreate(address, UriKind.Absolute, out var uri)
            || !string.Equals(uri.Scheme, TcpScheme, StringComparison.OrdinalIgnoreCase)
            || uri.IsDefaultPort
            || uri.Port <= 0)
        {
            return false;
        }
        host = uri.IdnHost;
        port = uri.Port;
        return true;
    }

    /// <summary>Destination metadata keys (values are text).</summary>
    public static class Metadata
    {
        public const string Role = "role";
        public const string State = "state";
        public const string Lag = "lag";
        public const string Timeline = "timeline";
        public const string ApiUrl = "api_url";
        public const string Host = "host";
        public const string Port = "port";

        /// <summary>The Patroni member name, kept when a resolver expands one member into several addresses.</summary>
        public const string Member = "member";
    }
}
