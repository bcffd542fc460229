using Microsoft.Extensions.Configuration;

namespace PatroniYarp.Tcp;

/// <summary>
/// In-memory configuration that Kestrel's configuration loader reads ("Endpoints:{name}:Url"). Replacing its data
/// raises the reload token, which makes Kestrel diff its endpoints: new ones bind, removed ones stop, equal ones stay.
/// </summary>
internal sealed class KestrelEndpointConfigurationProvider : ConfigurationProvider
{
    public void Replace(IDictionary<string, string?> data)
    {
        Data = new Dictionary<string, string?>(data, StringComparer.OrdinalIgnoreCase);
        OnReload();
    }
}
