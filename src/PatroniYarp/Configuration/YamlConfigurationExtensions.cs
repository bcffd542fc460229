using Microsoft.Extensions.Configuration;

namespace PatroniYarp.Configuration;

internal static class YamlConfigurationExtensions
{
    /// <summary>Adds a YAML file, like <c>AddJsonFile</c>: a relative path is resolved against the builder's base path.</summary>
    public static IConfigurationBuilder AddYamlFile(this IConfigurationBuilder builder, string path, bool optional = false, bool reloadOnChange = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return builder.AddYamlFile(source =>
        {
            source.Path = path;
            source.Optional = optional;
            source.ReloadOnChange = reloadOnChange;
            source.ResolveFileProvider();
        });
    }

    public static IConfigurationBuilder AddYamlFile(this IConfigurationBuilder builder, Action<YamlConfigurationSource> configure) =>
        builder.Add(configure);
}
