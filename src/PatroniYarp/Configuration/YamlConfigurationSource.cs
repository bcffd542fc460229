using Microsoft.Extensions.Configuration;

namespace PatroniYarp.Configuration;

/// <summary>A YAML file as a configuration source; optional files and reload on change work as for JSON.</summary>
internal sealed class YamlConfigurationSource : FileConfigurationSource
{
    public override IConfigurationProvider Build(IConfigurationBuilder builder)
    {
        EnsureDefaults(builder);
        return new YamlConfigurationProvider(this);
    }
}
