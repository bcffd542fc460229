namespace PatroniYarp.Tcp;

// STUB (helper E replaces): Kestrel endpoints from the configuration (admin listener and TCP ports), TCP forwarding.
internal static class TcpHostingExtensions
{
    public static WebApplicationBuilder AddTcpProxy(this WebApplicationBuilder builder) => builder;
}
