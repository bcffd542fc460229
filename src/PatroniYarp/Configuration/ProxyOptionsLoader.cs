using System.Text.RegularExpressions;
using Microsoft.Extensions.Configuration;

namespace PatroniYarp.Configuration;

/// <summary>The outcome of binding and validating the configuration: options when valid, else the errors.</summary>
internal sealed record ProxyOptionsLoadResult(ProxyOptions? Options, IReadOnlyList<string> Errors, IReadOnlyList<string> Warnings);

/// <summary>Reads <see cref="ProxyOptions"/> from the configuration as it is now: parse errors, binding, validation.</summary>
internal static partial class ProxyOptionsLoader
{
    public static ProxyOptionsLoadResult Load(IConfigurationRoot configuration)
    {
        var parseErrors = configuration.Providers.OfType<YamlConfigurationProvider>()
            .Select(provider => provider.LoadError?.Message).OfType<string>().ToList();
        if (parseErrors.Count > 0)
        {
            return new ProxyOptionsLoadResult(null, parseErrors, []);
        }

        var errors = new List<string>();
        var options = Bind(configuration, configuration, () => new ProxyOptions(), errors);
        var clusters = new Dictionary<string, ClusterOptions>();
        foreach (var clusterSection in configuration.GetSection("clusters").GetChildren())
        {
            var cluster = Bind(clusterSection, configuration, () => new ClusterOptions(), errors);
            var ports = new Dictionary<string, PortOptions>();
            foreach (var portSection in clusterSection.GetSection("ports").GetChildren())
            {
                ports[portSection.Key] = Bind(portSection, configuration, () => new PortOptions(), errors);
            }
            clusters[clusterSection.Key] = cluster with { Ports = ports };
        }
        if (errors.Count > 0)
        {
            return new ProxyOptionsLoadResult(null, errors, []);
        }

        options = options with { Clusters = clusters };
        var validation = ProxyOptionsValidator.Validate(options, configuration);
        return new ProxyOptionsLoadResult(validation.Errors.Count == 0 ? options : null, validation.Errors, validation.Warnings);
    }

    /// <summary>
    /// Binds one object. Clusters and ports are bound one by one because the binder silently drops a dictionary entry
    /// whose value fails to convert (a port with <c>host_port: abc</c> would just vanish); bound alone, it throws.
    /// </summary>
    private static T Bind<T>(IConfiguration section, IConfigurationRoot configuration, Func<T> empty, List<string> errors)
    {
        try
        {
            return section.Get<T>() ?? empty();
        }
        catch (InvalidOperationException ex)
        {
            errors.Add(DescribeBindingError(configuration, ex));
            return empty();
        }
    }

    /// <summary>The binder names the key ("… at 'clusters:main:ports:master:host_port' …"); say which file set it.</summary>
    private static string DescribeBindingError(IConfigurationRoot configuration, InvalidOperationException ex)
    {
        var match = BinderKey().Match(ex.Message);
        if (!match.Success)
        {
            return $"{ConfigurationKeySources.SourceOf(configuration, "clusters")}: {ex.Message}";
        }
        var key = match.Groups[1].Value;
        var reason = ex.InnerException?.Message ?? ex.Message;
        return $"{ConfigurationKeySources.Describe(configuration, key)}: invalid value '{configuration[key]}' ({reason})";
    }

    [GeneratedRegex(" at '([^']*)'")]
    private static partial Regex BinderKey();
}
