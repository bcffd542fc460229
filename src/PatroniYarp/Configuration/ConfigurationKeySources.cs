using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.CommandLine;
using Microsoft.Extensions.Configuration.EnvironmentVariables;

namespace PatroniYarp.Configuration;

/// <summary>Names where a configuration key came from, so that every message points at the file and the key.</summary>
internal static class ConfigurationKeySources
{
    /// <summary>E.g. <c>patroni.yaml: clusters.main.ports.master.roles[0]</c>.</summary>
    public static string Describe(IConfigurationRoot configuration, string key) => $"{SourceOf(configuration, key)}: {DisplayKey(key)}";

    /// <summary>
    /// The source whose value wins for the key (the last provider that has it or something under it); for a key that
    /// is absent, the source of its nearest present parent; for nothing at all, the YAML file.
    /// </summary>
    public static string SourceOf(IConfigurationRoot configuration, string key)
    {
        var providers = configuration.Providers.ToList();
        for (var path = key; path is not null; path = ConfigurationPath.GetParentPath(path))
        {
            for (var i = providers.Count - 1; i >= 0; i--)
            {
                if (Has(providers[i], path))
                {
                    return NameOf(providers[i]);
                }
            }
        }
        return providers.OfType<YamlConfigurationProvider>().LastOrDefault() is { } yaml
            ? yaml.Source.FileProvider?.GetFileInfo(yaml.Source.Path ?? "").Exists == true ? NameOf(yaml) : $"{NameOf(yaml)} (not found)"
            : "configuration";
    }

    public static string NameOf(IConfigurationProvider provider) => provider switch
    {
        FileConfigurationProvider file => file.Source.Path ?? file.ToString(),
        EnvironmentVariablesConfigurationProvider => "environment variables",
        CommandLineConfigurationProvider => "command line",
        _ => provider.ToString() ?? provider.GetType().Name,
    };

    /// <summary><c>clusters:main:hosts:0</c> → <c>clusters.main.hosts[0]</c>.</summary>
    public static string DisplayKey(string key)
    {
        var display = new System.Text.StringBuilder();
        foreach (var segment in key.Split(ConfigurationPath.KeyDelimiter))
        {
            if (segment.Length > 0 && segment.All(char.IsAsciiDigit))
            {
                display.Append('[').Append(segment).Append(']');
            }
            else
            {
                display.Append(display.Length == 0 ? "" : ".").Append(segment);
            }
        }
        return display.ToString();
    }

    private static bool Has(IConfigurationProvider provider, string key) =>
        provider.TryGet(key, out _) || provider.GetChildKeys([], key).Any();
}
