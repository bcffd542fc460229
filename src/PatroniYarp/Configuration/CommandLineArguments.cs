namespace PatroniYarp.Configuration;

/// <summary>
/// The command line of patroni_proxy (<c>PatroniYarp /path/patroni.yaml</c>), patroniglue (<c>-config FILE</c>,
/// <c>-verbose</c>, <c>-help</c>) and PatroniYarp's own options; <c>--key=value</c> goes to the host's configuration.
/// </summary>
internal sealed record CommandLineArguments(string? ConfigPath, bool ShowHelp, bool Verbose, IReadOnlyList<string> HostArgs, string? Error)
{
    public const string Usage = """
        usage: PatroniYarp [CONFIG.yaml] [options] [--key=value ...]

          CONFIG.yaml             the configuration file (patroni_proxy's format); default: patroni.yaml in the
                                  content root
          --config PATH           the same as an option; also --config=PATH and -config PATH (patroniglue)
          --check-config [PATH]   validate the configuration and print it as JSON (also valid YAML) without
                                  starting; exit code 0 when valid, 1 when not
          --verbose, -verbose     log at debug level
          --help, -h, -help       print this help
          --key=value             set any configuration key, e.g. --cluster_update_interval=1 or
                                  --clusters:main:hosts:0=http://10.0.0.1:8008

        Precedence, lowest first: appsettings.json, appsettings.{Environment}.json, the YAML file, environment
        variables (clusters__main__hosts__0=...), --key=value. Files reload when edited; SIGHUP re-reads them.
        """;

    /// <summary><c>--check-config</c>: validate, print the effective configuration and exit.</summary>
    public bool CheckConfig { get; init; }

    public static CommandLineArguments Parse(string[] args)
    {
        string? configPath = null;
        bool showHelp = false, verbose = false, checkConfig = false;
        var hostArgs = new List<string>();

        string? SetConfigPath(string path)
        {
            if (path.Length == 0)
            {
                return "empty configuration file path";
            }
            if (configPath is not null)
            {
                return $"unexpected argument '{path}': the configuration file is already '{configPath}'";
            }
            configPath = path;
            return null;
        }

        string? error = null;
        for (var i = 0; i < args.Length && error is null; i++)
        {
            var arg = args[i];
            var hasValue = i + 1 < args.Length && !args[i + 1].StartsWith('-');
            if (arg is "--help" or "-h" or "-help")
            {
                showHelp = true;
            }
            else if (arg is "--verbose" or "-verbose")
            {
                verbose = true;
            }
            else if (arg is "--config" or "-config")
            {
                error = hasValue ? SetConfigPath(args[++i]) : $"{arg} needs a file path";
            }
            else if (arg is "--check-config")
            {
                checkConfig = true;
                error = hasValue ? SetConfigPath(args[++i]) : null;
            }
            else if (arg.StartsWith("--config=", StringComparison.Ordinal) || arg.StartsWith("-config=", StringComparison.Ordinal))
            {
                error = SetConfigPath(arg[(arg.IndexOf('=') + 1)..]);
            }
            else if (arg.StartsWith("--", StringComparison.Ordinal) && arg.IndexOf('=') > 2)
            {
                // Configuration overrides; WebApplicationFactory passes its settings this way too.
                hostArgs.Add(arg);
            }
            else if (arg.StartsWith('-'))
            {
                error = $"unknown option '{arg}'";
            }
            else
            {
                error = SetConfigPath(arg);
            }
        }
        return new CommandLineArguments(configPath, showHelp, verbose, hostArgs, error) { CheckConfig = checkConfig };
    }
}
