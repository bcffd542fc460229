namespace PatroniYarp.Admin;

// STUB (helper D replaces): patroni_proxy's admin API.
internal static class AdminEndpointRouteBuilderExtensions
{
    public static IEndpointRouteBuilder MapAdminApi(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet("/", () => "OK");
        return endpoints;
    }
}
