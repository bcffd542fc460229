namespace PatroniYarp.Configuration;

// STUB (helper B replaces): command line of patroni_proxy, patroniglue and PatroniYarp.
internal sealed record CommandLineArguments(string? ConfigPath, bool ShowHelp, bool Verbose, IReadOnlyList<string> HostArgs, string? Error)
{
    public const string Usage = "usage: PatroniYarp [CONFIG.yaml] [--config PATH] [--help]";

    public static CommandLineArguments Parse(string[] args) => new(null, false, false, args, null);
}
