using Microsoft.Extensions.Configuration;

namespace PatroniYarp.Configuration;

/// <summary><c>--check-config</c>: validate without starting anything and print the effective configuration.</summary>
internal static class ConfigurationCheck
{
    /// <summary>Prints the options as JSON (also valid YAML) to <paramref name="output"/>; 0 when valid, 1 when not.</summary>
    public static int Run(IConfigurationRoot configuration, TextWriter output, TextWriter error)
    {
        var loaded = ProxyOptionsLoader.Load(configuration);
        foreach (var warning in loaded.Warnings)
        {
            error.WriteLine($"warning: {warning}");
        }
        if (loaded.Options is null)
        {
            foreach (var message in loaded.Errors)
            {
                error.WriteLine($"error: {message}");
            }
            return 1;
        }
        // The printed configuration ends up in terminals and CI logs: never the secret itself.
        var printed = loaded.Options.AdminToken is null ? loaded.Options : loaded.Options with { AdminToken = "(set)" };
        output.WriteLine(ProxyOptionsJson.Serialize(printed));
        return 0;
    }
}
