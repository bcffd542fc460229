using Microsoft.Extensions.Options;

namespace PatroniYarp.Configuration;

// STUB (helper B replaces): YAML source, last-good IOptionsMonitor<ProxyOptions>, SIGHUP.
internal static class ConfigurationHostingExtensions
{
    public static WebApplicationBuilder AddPatroniYarpConfiguration(this WebApplicationBuilder builder, CommandLineArguments cli)
    {
        builder.Services.AddOptions<ProxyOptions>().Bind(builder.Configuration);
        return builder;
    }
}
