using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.Json;
using Microsoft.Extensions.Options;

namespace PatroniYarp.Configuration;

internal static class ConfigurationHostingExtensions
{
    public const string DefaultFileName = "patroni.yaml";

    private const string PollingVariable = "DOTNET_USE_POLLING_FILE_WATCHER";

    /// <summary>
    /// Has .NET poll the configuration files for changes (a stat every 4 s) rather than watch them with inotify, unless
    /// <c>DOTNET_USE_POLLING_FILE_WATCHER</c> is set. Call it before the host builder, whose file providers read it once.
    /// </summary>
    /// <remarks>
    /// .NET's inotify watcher covers the whole tree under the watched file's directory: from / (systemd's working
    /// directory, the content root for appsettings.json) that is tens of thousands of watches, and where the per-user
    /// limit is lower, edits are silently no longer seen. Nor does it see a Kubernetes ConfigMap update, which swaps a
    /// symlink beside the file rather than writing it; polling follows the link.
    /// </remarks>
    public static void PollConfigurationFiles()
    {
        if (Environment.GetEnvironmentVariable(PollingVariable) is null)
        {
            Environment.SetEnvironmentVariable(PollingVariable, "true");
        }
    }

    /// <summary>
    /// Adds the patroni_proxy YAML file as a configuration source and a validated, last-good
    /// <see cref="IOptionsMonitor{ProxyOptions}"/>; SIGHUP re-reads the files.
    /// <para>
    /// The YAML file is the path given on the command line (<c>PatroniYarp /path/patroni.yaml</c> or
    /// <c>--config PATH</c>; it must exist), else <c>patroni.yaml</c> in the content root (optional).
    /// </para>
    /// <para>
    /// Precedence, lowest first; a later source overrides an earlier one key by key:
    /// 1. <c>appsettings.json</c>;
    /// 2. <c>appsettings.{Environment}.json</c> (then user secrets, in Development only);
    /// 3. the YAML file;
    /// 4. environment variables, <c>__</c> for <c>:</c> (e.g. <c>clusters__main__hosts__0=http://10.0.0.1:8008</c>);
    /// 5. command-line <c>--key=value</c> (e.g. <c>--cluster_update_interval=1</c>).
    /// The JSON and YAML files reload when they change (polled, see <see cref="PollConfigurationFiles"/>), unless
    /// <c>--hostBuilder:reloadConfigOnChange=false</c>; SIGHUP re-reads them all at once. An invalid reload is logged
    /// and the running configuration stays.
    /// </para>
    /// </summary>
    /// <exception cref="ConfigurationException">The given file is missing, unreadable or not YAML.</exception>
    public static WebApplicationBuilder AddPatroniYarpConfiguration(this WebApplicationBuilder builder, CommandLineArguments cli)
    {
        var path = Path.GetFullPath(cli.ConfigPath ?? Path.Combine(builder.Environment.ContentRootPath, DefaultFileName));
        if (cli.ConfigPath is not null && !File.Exists(path))
        {
            throw new ConfigurationException($"configuration file '{path}' not found");
        }

        var source = new YamlConfigurationSource
        {
            Path = path,
            Optional = cli.ConfigPath is null,
            // ASP.NET's own switch for appsettings.json (--hostBuilder:reloadConfigOnChange=false) covers the YAML too:
            // then only SIGHUP reloads, for deployments that swap files in steps (Kubernetes ConfigMaps).
            ReloadOnChange = builder.Configuration.GetValue("hostBuilder:reloadConfigOnChange", defaultValue: true),
            // Errors are the options monitor's to report: at start-up as an exception, on a reload as one log entry
            // while the running configuration stays. Unignored, a reload error would vanish on the file watcher's thread.
            OnLoadException = context => context.Ignore = true,
        };
        source.ResolveFileProvider();

        var sources = builder.Configuration.Sources;
        try
        {
            sources.Insert(YamlSourceIndex(sources), source);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ConfigurationException($"cannot read configuration file '{path}': {ex.Message}", ex);
        }
        if (((IConfigurationRoot)builder.Configuration).Providers.OfType<YamlConfigurationProvider>().FirstOrDefault(p => p.Source == source)?.LoadError is { } parseError)
        {
            throw new ConfigurationException(parseError.Message, parseError);
        }

        if (cli.Verbose)
        {
            builder.Logging.AddFilter("PatroniYarp", LogLevel.Debug);
        }

        builder.Services.AddSingleton<ProxyOptionsMonitor>();
        builder.Services.AddSingleton<IOptionsMonitor<ProxyOptions>>(services => services.GetRequiredService<ProxyOptionsMonitor>());
        // For code that takes IOptions<ProxyOptions>: the validated configuration as of its first use, never the unbound default.
        builder.Services.AddSingleton<IOptions<ProxyOptions>>(services => Options.Create(services.GetRequiredService<ProxyOptionsMonitor>().CurrentValue));
        builder.Services.AddHostedService<SighupReloadService>();
        return builder;
    }

    /// <summary>
    /// Right after the last JSON file (appsettings, user secrets), so environment and command line still win; with no
    /// JSON file at all, first, which keeps the YAML below them too.
    /// </summary>
    private static int YamlSourceIndex(IList<IConfigurationSource> sources)
    {
        for (var i = sources.Count - 1; i >= 0; i--)
        {
            if (sources[i] is JsonConfigurationSource)
            {
                return i + 1;
            }
        }
        return 0;
    }
}
