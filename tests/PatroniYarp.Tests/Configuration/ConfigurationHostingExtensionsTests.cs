using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.EnvironmentVariables;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using PatroniYarp.Configuration;

namespace PatroniYarp.Tests.Configuration;

public sealed class ConfigurationHostingExtensionsTests : IDisposable
{
    private readonly TempConfigDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task AddPatroniYarpConfiguration_Precedence_AppSettingsThenEnvironmentFileThenYamlThenCommandLine()
    {
        _dir.Write("appsettings.json", """{"cluster_update_interval": 1, "api_timeout": 1, "listen_address": "127.0.0.1:9001", "clusters": {"main": {"hosts": ["http://10.0.0.9:8008"]}}}""");
        _dir.Write("appsettings.Production.json", """{"listen_address": "127.0.0.1:9002"}""");
        _dir.Write("patroni.yaml", ConfigurationSamples.Minimal.Replace("cluster_update_interval: 3", "cluster_update_interval: 3\napi_timeout: 2"));

        await using var app = Build(["--api_timeout=4"]);
        var options = app.Services.GetRequiredService<IOptionsMonitor<ProxyOptions>>().CurrentValue;

        Assert.Equal("127.0.0.1:9002", options.ListenAddress);
        Assert.Equal(3, options.ClusterUpdateInterval);
        Assert.Equal(4, options.ApiTimeout);
        Assert.Equal(["http://127.0.0.1:8008"], options.Clusters["main"].Hosts);
    }

    [Fact]
    public void AddPatroniYarpConfiguration_YamlSource_AfterTheJsonFilesAndBeforeEnvironmentAndCommandLine()
    {
        var builder = CreateBuilder(["--x=y"]);
        builder.AddPatroniYarpConfiguration(CommandLineArguments.Parse(["--x=y"]));

        var sources = builder.Configuration.Sources.ToList();
        var yaml = sources.FindIndex(s => s is YamlConfigurationSource);
        Assert.True(yaml > sources.FindLastIndex(s => s is Microsoft.Extensions.Configuration.Json.JsonConfigurationSource));
        Assert.True(yaml < sources.FindLastIndex(s => s is EnvironmentVariablesConfigurationSource { Prefix: null or "" }));
        Assert.True(yaml < sources.FindLastIndex(s => s is Microsoft.Extensions.Configuration.CommandLine.CommandLineConfigurationSource));
        ((IDisposable)builder.Configuration).Dispose();
    }

    [Fact]
    public async Task AddPatroniYarpConfiguration_NoPath_ReadsPatroniYamlInTheContentRoot()
    {
        _dir.Write("patroni.yaml", ConfigurationSamples.Minimal);

        await using var app = Build([]);

        Assert.Equal(3, app.Services.GetRequiredService<IOptionsMonitor<ProxyOptions>>().CurrentValue.ClusterUpdateInterval);
        Assert.Equal(3, app.Services.GetRequiredService<IOptions<ProxyOptions>>().Value.ClusterUpdateInterval);
    }

    [Fact]
    public async Task AddPatroniYarpConfiguration_ExplicitPath_ReadsThatFile()
    {
        var path = _dir.Write("elsewhere.yml", ConfigurationSamples.Minimal.Replace("cluster_update_interval: 3", "cluster_update_interval: 5"));

        await using var app = Build([path]);

        Assert.Equal(5, app.Services.GetRequiredService<IOptionsMonitor<ProxyOptions>>().CurrentValue.ClusterUpdateInterval);
    }

    [Fact]
    public void AddPatroniYarpConfiguration_ExplicitFileMissing_ClearStartUpError()
    {
        var missing = Path.Combine(_dir.Path, "missing.yaml");
        var builder = CreateBuilder([]);

        var ex = Assert.Throws<ConfigurationException>(() => builder.AddPatroniYarpConfiguration(CommandLineArguments.Parse([missing])));

        Assert.Equal($"configuration file '{missing}' not found", ex.Message);
        ((IDisposable)builder.Configuration).Dispose();
    }

    [Fact]
    public void AddPatroniYarpConfiguration_ParseError_StartUpErrorNamesFileAndLine()
    {
        var path = _dir.Write("broken.yaml", "clusters:\n  main: {hosts: [\n");
        var builder = CreateBuilder([]);

        var ex = Assert.Throws<ConfigurationException>(() => builder.AddPatroniYarpConfiguration(CommandLineArguments.Parse([path])));

        Assert.StartsWith("broken.yaml: line ", ex.Message);
        ((IDisposable)builder.Configuration).Dispose();
    }

    [Fact]
    public async Task Build_InvalidConfiguration_ResolvingTheMonitorThrowsConfigurationException()
    {
        _dir.Write("patroni.yaml", ConfigurationSamples.Minimal.Replace("[leader]", "[lead]"));
        await using var app = Build([]);

        var ex = Assert.Throws<ConfigurationException>(() => app.Services.GetRequiredService<IOptionsMonitor<ProxyOptions>>());

        Assert.Contains("patroni.yaml: clusters.main.ports.master.roles[0]: unknown role 'lead'", ex.Message);
    }

    [Fact]
    public async Task FileEdit_WhileRunning_ValidChangeAppliedInvalidOneLoggedAndIgnored()
    {
        var path = _dir.Write("patroni.yaml", ConfigurationSamples.Minimal);
        var logs = new CapturingLoggerProvider();
        await using var app = Build([], logs);
        var monitor = app.Services.GetRequiredService<IOptionsMonitor<ProxyOptions>>();
        Assert.IsType<ProxyOptionsMonitor>(monitor);

        File.WriteAllText(path, ConfigurationSamples.Minimal.Replace("[leader]", "[lead]"));
        await PollUntil(() => logs.Entries.Any(e => e.Level == LogLevel.Error && e.Message.Contains("unknown role 'lead'", StringComparison.Ordinal)));
        Assert.Equal(["leader"], monitor.CurrentValue.Clusters["main"].Ports["master"].Roles);

        File.WriteAllText(path, ConfigurationSamples.Minimal.Replace("cluster_update_interval: 3", "cluster_update_interval: 7"));
        await PollUntil(() => monitor.CurrentValue.ClusterUpdateInterval == 7);
    }

    [Fact]
    public async Task AddPatroniYarpConfiguration_Verbose_DebugLoggingForPatroniYarp()
    {
        _dir.Write("patroni.yaml", ConfigurationSamples.Minimal);

        await using var quiet = Build([]);
        await using var verbose = Build(["-verbose"]);

        Assert.False(quiet.Services.GetRequiredService<ILoggerFactory>().CreateLogger("PatroniYarp.Configuration").IsEnabled(LogLevel.Debug));
        Assert.True(verbose.Services.GetRequiredService<ILoggerFactory>().CreateLogger("PatroniYarp.Configuration").IsEnabled(LogLevel.Debug));
    }

    [Fact]
    public async Task AddPatroniYarpConfiguration_SighupServiceRegistered()
    {
        _dir.Write("patroni.yaml", ConfigurationSamples.Minimal);

        await using var app = Build([]);

        Assert.Contains(app.Services.GetServices<IHostedService>(), s => s is SighupReloadService);
    }

    [Fact]
    public void CheckConfig_Valid_PrintsTheEffectiveConfigurationAndReturnsZero()
    {
        var path = _dir.Write("patroni.yaml", ConfigurationSamples.Minimal + "\ntypo: 1\n");
        var builder = CreateBuilder(["--api_timeout=3"]);
        builder.AddPatroniYarpConfiguration(CommandLineArguments.Parse([path]));
        var output = new StringWriter();
        var error = new StringWriter();

        var exitCode = ConfigurationCheck.Run((IConfigurationRoot)builder.Configuration, output, error);

        Assert.Equal(0, exitCode);
        Assert.Contains("warning: patroni.yaml: typo: unknown key", error.ToString());
        // The JSON printed is also YAML: reading it back gives the same options.
        var reread = new ConfigurationBuilder().AddYamlFile(_dir.Write("printed.yaml", output.ToString())).Build();
        var options = ProxyOptionsLoader.Load(reread).Options!;
        Assert.Equal(3, options.ApiTimeout);
        Assert.Equal(ProxyOptionsJson.Serialize(options), output.ToString().TrimEnd());
        Assert.DoesNotContain("Period", output.ToString());
        ((IDisposable)builder.Configuration).Dispose();
    }

    [Fact]
    public void CheckConfig_Invalid_PrintsErrorsAndReturnsOne()
    {
        var path = _dir.Write("patroni.yaml", ConfigurationSamples.Minimal.Replace("[leader]", "[]"));
        var builder = CreateBuilder([]);
        builder.AddPatroniYarpConfiguration(CommandLineArguments.Parse([path]));
        var output = new StringWriter();
        var error = new StringWriter();

        var exitCode = ConfigurationCheck.Run((IConfigurationRoot)builder.Configuration, output, error);

        Assert.Equal(1, exitCode);
        Assert.Equal("", output.ToString());
        Assert.StartsWith("error: patroni.yaml: clusters.main.ports.master.roles: no roles", error.ToString());
        ((IDisposable)builder.Configuration).Dispose();
    }

    private WebApplicationBuilder CreateBuilder(string[] hostArgs) =>
        WebApplication.CreateBuilder(new WebApplicationOptions { Args = hostArgs, ContentRootPath = _dir.Path, EnvironmentName = Environments.Production });

    private WebApplication Build(string[] args, CapturingLoggerProvider? logs = null)
    {
        var cli = CommandLineArguments.Parse(args);
        var builder = CreateBuilder([.. cli.HostArgs]);
        builder.AddPatroniYarpConfiguration(cli);
        if (logs is not null)
        {
            builder.Logging.AddProvider(logs);
        }
        return builder.Build();
    }

    private static async Task PollUntil(Func<bool> condition)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (!condition())
        {
            await Task.Delay(20, timeout.Token);
        }
    }
}
