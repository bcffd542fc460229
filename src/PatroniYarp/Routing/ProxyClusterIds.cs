namespace PatroniYarp.Routing;

/// <summary>
/// Names shared by the YARP configuration PatroniYarp publishes and the code that reads YARP's state back.
/// One YARP cluster per configured port: its destinations are the Patroni members eligible for that port.
/// </summary>
internal static class ProxyClusterIds
{
    /// <summary>YARP cluster id of a configured port, e.g. "main/master".</summary>
    public static string ForPort(string cluster, string port) => $"{cluster}/{port}";

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
