using System.Reflection;
using Microsoft.Extensions.Options;
using PatroniYarp.Admin;
using PatroniYarp.Configuration;
using PatroniYarp.Diagnostics;
using PatroniYarp.HealthChecks;
using PatroniYarp.Patroni;
using PatroniYarp.Routing;
using PatroniYarp.Tcp;

// Patroni cluster state → snapshot store → YARP config (one cluster per port) → TCP forwarding and HTTP checks.
if (args is [HealthProbe.Option, ..])
{
    return await HealthProbe.RunAsync(args, Console.Out, Console.Error);
}
var cli = CommandLineArguments.Parse(args);
if (cli.Error is not null)
{
    Console.Error.WriteLine(cli.Error);
    Console.Error.WriteLine(CommandLineArguments.Usage);
    return 2;
}
if (cli.ShowHelp)
{
    Console.WriteLine(CommandLineArguments.Usage);
    return 0;
}

// Process-wide settings: not for a test host that runs this Program in its own process (WebApplicationFactory).
if (Assembly.GetEntryAssembly() == typeof(Program).Assembly)
{
    TcpHostingExtensions.TuneRuntime();
}
ConfigurationHostingExtensions.PollConfigurationFiles();
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = [.. cli.HostArgs] });
try
{
    builder.AddPatroniYarpConfiguration(cli);
    if (cli.CheckConfig)
    {
        return ConfigurationCheck.Run((IConfigurationRoot)builder.Configuration, Console.Out, Console.Error);
    }
    builder.Services.AddPatroniDiscovery();
    builder.Services.AddPatroniRouting();
    builder.Services.AddPatroniHealthChecks();
    builder.AddTcpProxy();
    builder.AddPatroniYarpDiagnostics();
    builder.AddAdminApi();

    var app = builder.Build().WithoutAuthorizationMiddleware();

    // Resolving the monitor loads and validates the configuration: an invalid file stops start-up here, by name.
    _ = app.Services.GetRequiredService<IOptionsMonitor<ProxyOptions>>().CurrentValue;

    app.MapDiagnostics();
    app.MapAdminApi();
    app.MapStatusPage();
    app.MapReverseProxy(proxy =>
    {
        // The health-check routes are answered first; the rest is YARP's default pipeline.
        proxy.UsePatroniHealthChecks();
        proxy.UseSessionAffinity();
        proxy.UseLoadBalancing();
        proxy.UsePassiveHealthChecks();
    });
    app.Run();
    return 0;
}
catch (ConfigurationException ex)
{
    Console.Error.WriteLine($"PatroniYarp: invalid configuration: {ex.Message}");
    return 1;
}
catch (IOException ex) when (ex.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException)
{
    // Kestrel's message names the address ("Failed to bind to address http://127.0.0.1:6432: address already in use.").
    Console.Error.WriteLine($"PatroniYarp: cannot listen: {ex.Message}");
    return 1;
}

/// <summary>Entry point; public so that WebApplicationFactory&lt;Program&gt; can host it in tests.</summary>
public partial class Program;
