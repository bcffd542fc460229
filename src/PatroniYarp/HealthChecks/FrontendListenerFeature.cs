namespace PatroniYarp.HealthChecks;

/// <summary>
/// Marks connections accepted on the patroniglue frontend listener. Only the health checks are served there; the
/// admin API (which can make PatroniYarp poll Patroni) answers on the admin listener alone.
/// </summary>
internal sealed class FrontendListenerFeature
{
    public static readonly FrontendListenerFeature Instance = new();

    private FrontendListenerFeature()
    {
    }

    public static bool IsFrontend(HttpContext context) => context.Features.Get<FrontendListenerFeature>() is not null;
}
