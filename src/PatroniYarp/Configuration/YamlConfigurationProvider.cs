using Microsoft.Extensions.Configuration;

namespace PatroniYarp.Configuration;

/// <summary>
/// Loads a YAML file into configuration keys: mappings become <c>a:b:c</c>, sequences <c>a:0</c>, <c>a:1</c>.
/// </summary>
internal sealed class YamlConfigurationProvider(YamlConfigurationSource source) : FileConfigurationProvider(source)
{
    private volatile FormatException? _loadError;

    /// <summary>
    /// The parse error of the last load while the file is still there, else null. A failed reload leaves the provider
    /// empty (FileConfigurationProvider clears it), so the options monitor asks this to report the real cause.
    /// </summary>
    public FormatException? LoadError =>
        _loadError is { } error && Source.FileProvider?.GetFileInfo(Source.Path ?? "").Exists == true ? error : null;

    public override void Load(Stream stream)
    {
        try
        {
            Data = YamlConfigurationFileParser.Parse(stream, Source.Path ?? "YAML");
            _loadError = null;
        }
        catch (FormatException ex)
        {
            _loadError = ex;
            throw;
        }
        catch (Exception ex)
        {
            // A YamlDotNet surprise: it must still reach the options monitor rather than be ignored with the rest.
            _loadError = new FormatException($"{Source.Path}: {ex.Message}", ex);
            throw _loadError;
        }
    }
}
