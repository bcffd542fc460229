using System.Globalization;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using PatroniYarp.Configuration;
using PatroniYarp.Diagnostics;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Health;

namespace PatroniYarp.Tcp;

internal static class TcpHostingExtensions
{
    /// <summary>Room after the drain period for the closed sessions to end before the host gives up on Kestrel.</summary>
    private static readonly TimeSpan ShutdownMargin = TimeSpan.FromSeconds(5);

    private const string InlineSocketCompletions = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";
    private const string SocketEventThreads = "DOTNET_SYSTEM_NET_SOCKETS_THREAD_COUNT";
    private const string MinWorkerThreads = "DOTNET_ThreadPool_ForceMinWorkerThreads";

    /// <summary>
    /// The runtime settings the proxy wants, set as the process starts: each is read once, when the runtime first needs
    /// it, and the host builder already starts the thread pool (set in AddTcpProxy, the thread-pool goal was never
    /// applied: 2 minimum workers on 2 cores with the variable set). An operator's own setting wins.
    /// </summary>
    public static void TuneRuntime()
    {
        var halfTheCores = Math.Max(1, Environment.ProcessorCount / 2).ToString(CultureInfo.InvariantCulture);
        // The TCP ports have their own loops (SocketEventLoop); .NET's socket engine serves the HTTP side: health checks,
        // the admin API and the polls of Patroni. Its continuations never block, so they run on the epoll thread instead
        // of hopping to the thread pool: cached /primary 67-89k against 63-83k requests/s without (4 interleaved pairs).
        SetUnlessSet(InlineSocketCompletions, "1");
        // With inline completions .NET starts one event thread per core. The proxy shares the machine with its clients
        // and PostgreSQL, and fewer threads batch more events per epoll_wait and wake less (README, "Performance").
        SetUnlessSet(SocketEventThreads, halfTheCores);
        // Kestrel hands every accepted connection to the thread pool, and a worker that takes an item wakes another one
        // "to parallelize", which finds nothing: on 2 cores each wake cost several context switches. A thread goal of
        // half the cores instead of all of them leaves that worker asleep; the pool still adds workers when work waits
        // (hill climbing, starvation). pgbench -S -C: 10.2 -> 8.4 context switches and ~6 % less CPU per connection
        // (13 interleaved pairs); P1 and P6 unchanged.
        SetUnlessSet(MinWorkerThreads, halfTheCores);
    }

    /// <summary>
    /// The TCP proxy: Kestrel endpoints from the configuration (admin API and one raw TCP endpoint per port, following
    /// reloads), the connection handler, balancer, session registry, the YARP change listener that closes sessions to
    /// members no longer eligible, held sessions, and the SIGTERM drain. Expects YARP (AddReverseProxy), ProxyOptions and
    /// an IClusterRefresher (AddPatroniDiscovery) registered.
    /// </summary>
    public static WebApplicationBuilder AddTcpProxy(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.TryAddSingleton(TimeProvider.System);
        services.AddOptions<TcpProxyOptions>();
        services.TryAddSingleton<SessionRegistry>();
        services.AddProxyMetrics();
        services.TryAddSingleton<TcpLoadBalancer>();
        services.TryAddSingleton<SocketEventLoops>();
        services.TryAddSingleton<DescriptorBudget>();
        services.TryAddSingleton<BackendConnector>();
        services.TryAddSingleton<TcpConnectionHandler>();
        services.TryAddSingleton<SpareBackends>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConfigChangeListener, SpareBackends>(static sp => sp.GetRequiredService<SpareBackends>()));
        services.TryAddSingleton<TcpEndpointManager>();
        // Kestrel tries the transport registered last first; this one takes only the TCP ports' endpoints.
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConnectionListenerFactory, TcpSocketListenerFactory>());
        // And this one the rest (the HTTP API), Kestrel's own socket transport held to its share of the open files.
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConnectionListenerFactory, HttpListenerFactory>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConfigChangeListener, TcpSessionReaper>());
        AddHeldSessions(services);
        services.AddHostedService<TcpDrainService>();

        // Runs after the web host's own Kestrel setup, so this loader replaces the default "Kestrel" section loader.
        services.AddOptions<KestrelServerOptions>()
            .Configure<TcpEndpointManager>(static (kestrel, manager) => manager.AttachTo(kestrel));
        services.AddOptions<HostOptions>()
            .Configure<IOptionsMonitor<ProxyOptions>>(static (host, proxy) =>
                host.ShutdownTimeout = proxy.CurrentValue.DrainPeriod + ShutdownMargin);
        return builder;
    }

    /// <summary>
    /// Held sessions wake when YARP applies a configuration (a listener) and whenever it recomputes a port's available
    /// destinations, passive-health reactivations included (a decorator of YARP's destinations updater).
    /// </summary>
    private static void AddHeldSessions(IServiceCollection services)
    {
        if (services.Any(static d => d.ServiceType == typeof(HeldSessions)))
        {
            return;
        }
        var yarpUpdater = services.LastOrDefault(static d => d.ServiceType == typeof(IClusterDestinationsUpdater))?.ImplementationType
            ?? throw new InvalidOperationException("AddTcpProxy needs YARP's services (AddReverseProxy) registered first.");
        services.AddSingleton<HeldSessions>();
        services.AddSingleton<IConfigChangeListener>(static sp => sp.GetRequiredService<HeldSessions>());
        services.Replace(ServiceDescriptor.Singleton<IClusterDestinationsUpdater>(sp => new SignalingClusterDestinationsUpdater(
            (IClusterDestinationsUpdater)ActivatorUtilities.CreateInstance(sp, yarpUpdater), sp.GetRequiredService<HeldSessions>(),
            sp.GetRequiredService<SpareBackends>())));
    }

    private static void SetUnlessSet(string variable, string value)
    {
        if (Environment.GetEnvironmentVariable(variable) is null)
        {
            Environment.SetEnvironmentVariable(variable, value);
        }
    }
}
