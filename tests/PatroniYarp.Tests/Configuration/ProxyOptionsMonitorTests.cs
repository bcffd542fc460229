using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using PatroniYarp.Configuration;

namespace PatroniYarp.Tests.Configuration;

public sealed class ProxyOptionsMonitorTests : IDisposable
{
    private readonly TempConfigDirectory _dir = new();
    private readonly CapturingLoggerProvider _logs = new();
    private readonly string _path;
    private readonly IConfigurationRoot _root;

    public ProxyOptionsMonitorTests()
    {
        _path = _dir.Write("patroni.yaml", ConfigurationSamples.Minimal);
        _root = new ConfigurationBuilder().AddYamlFile(source =>
        {
            source.Path = _path;
            source.ResolveFileProvider();
            source.OnLoadException = context => context.Ignore = true;
        }).Build();
    }

    public void Dispose()
    {
        (_root as IDisposable)?.Dispose();
        _dir.Dispose();
    }

    private IReadOnlyList<CapturingLoggerProvider.LogEntry> Errors => [.. _logs.Entries.Where(e => e.Level == LogLevel.Error)];

    [Fact]
    public void Constructor_InvalidConfiguration_ThrowsWithEveryError()
    {
        _dir.Write("patroni.yaml", ConfigurationSamples.Minimal.Replace("[leader]", "[lead]").Replace("cluster_update_interval: 3", "cluster_update_interval: 0"));
        _root.Reload();

        var ex = Assert.Throws<ConfigurationException>(() => new ProxyOptionsMonitor(_root, _logs.CreateLogger<ProxyOptionsMonitor>()));

        Assert.Contains("patroni.yaml: cluster_update_interval: must be a positive number of seconds", ex.Message);
        Assert.Contains("patroni.yaml: clusters.main.ports.master.roles[0]: unknown role 'lead'", ex.Message);
    }

    [Fact]
    public void Constructor_ParseError_ThrowsNamingFileAndLine()
    {
        _dir.Write("patroni.yaml", "clusters:\n  main: [\n");
        _root.Reload();

        var ex = Assert.Throws<ConfigurationException>(() => new ProxyOptionsMonitor(_root, _logs.CreateLogger<ProxyOptionsMonitor>()));

        Assert.StartsWith("patroni.yaml: line ", ex.Message);
    }

    [Fact]
    public void ConfigurationReload_InvalidEdit_KeepsCurrentValueLogsOneErrorAndNoOnChange()
    {
        using var monitor = new ProxyOptionsMonitor(_root, _logs.CreateLogger<ProxyOptionsMonitor>());
        var before = monitor.CurrentValue;
        var changes = 0;
        using var _ = monitor.OnChange((_, _) => changes++);

        _dir.Write("patroni.yaml", ConfigurationSamples.Minimal.Replace("[leader]", "[lead]"));
        _root.Reload();

        Assert.Same(before, monitor.CurrentValue);
        Assert.Same(before, monitor.Get(null));
        Assert.Equal(0, changes);
        var error = Assert.Single(Errors);
        Assert.Contains("keeping the running one", error.Message);
        Assert.Contains("patroni.yaml: clusters.main.ports.master.roles[0]: unknown role 'lead'", error.Message);
    }

    [Fact]
    public void ConfigurationReload_ParseError_KeepsCurrentValueAndLogsFileAndLine()
    {
        using var monitor = new ProxyOptionsMonitor(_root, _logs.CreateLogger<ProxyOptionsMonitor>());
        var before = monitor.CurrentValue;

        _dir.Write("patroni.yaml", ConfigurationSamples.Minimal + "\n  oops: [\n");
        _root.Reload();

        Assert.Same(before, monitor.CurrentValue);
        Assert.Contains("patroni.yaml: line ", Assert.Single(Errors).Message);
    }

    [Fact]
    public void ConfigurationReload_ValidEdit_OnChangeFiresWithTheNewValue()
    {
        using var monitor = new ProxyOptionsMonitor(_root, _logs.CreateLogger<ProxyOptionsMonitor>());
        var seen = new List<ProxyOptions>();
        using var _ = monitor.OnChange((options, _) => seen.Add(options));

        _dir.Write("patroni.yaml", ConfigurationSamples.Minimal.Replace("cluster_update_interval: 3", "cluster_update_interval: 1"));
        _root.Reload();

        var changed = Assert.Single(seen);
        Assert.Equal(1, changed.ClusterUpdateInterval);
        Assert.Same(changed, monitor.CurrentValue);
        Assert.Empty(Errors);
    }

    [Fact]
    public void ConfigurationReload_InvalidThenValid_AppliesTheValidOne()
    {
        using var monitor = new ProxyOptionsMonitor(_root, _logs.CreateLogger<ProxyOptionsMonitor>());
        var seen = new List<ProxyOptions>();
        using var _ = monitor.OnChange((options, _) => seen.Add(options));

        _dir.Write("patroni.yaml", "clusters: [\n");
        _root.Reload();
        _dir.Write("patroni.yaml", ConfigurationSamples.Minimal.Replace("127.0.0.1:6432", "127.0.0.1:6433"));
        _root.Reload();

        Assert.Equal("127.0.0.1:6433", Assert.Single(seen).Clusters["main"].Ports["master"].Listen);
        Assert.Single(Errors);
    }

    [Fact]
    public void ConfigurationReload_SameContent_NoOnChange()
    {
        using var monitor = new ProxyOptionsMonitor(_root, _logs.CreateLogger<ProxyOptionsMonitor>());
        var before = monitor.CurrentValue;
        var changes = 0;
        using var _ = monitor.OnChange((_, _) => changes++);

        _dir.Write("patroni.yaml", "# reformatted\n" + ConfigurationSamples.Minimal.Replace("[leader]", "[\"leader\"]"));
        _root.Reload();

        Assert.Equal(0, changes);
        Assert.Same(before, monitor.CurrentValue);
    }

    [Fact]
    public void OnChange_Disposed_NoLongerCalled()
    {
        using var monitor = new ProxyOptionsMonitor(_root, _logs.CreateLogger<ProxyOptionsMonitor>());
        var changes = 0;
        monitor.OnChange((_, _) => changes++)?.Dispose();

        _dir.Write("patroni.yaml", ConfigurationSamples.Minimal.Replace("cluster_update_interval: 3", "cluster_update_interval: 1"));
        _root.Reload();

        Assert.Equal(0, changes);
        Assert.Equal(1, monitor.CurrentValue.ClusterUpdateInterval);
    }

    [Fact]
    public void OnChange_ListenerThrows_OthersStillCalledAndErrorLogged()
    {
        using var monitor = new ProxyOptionsMonitor(_root, _logs.CreateLogger<ProxyOptionsMonitor>());
        var changes = 0;
        using var first = monitor.OnChange((_, _) => throw new InvalidOperationException("listener bug"));
        using var second = monitor.OnChange((_, _) => changes++);

        _dir.Write("patroni.yaml", ConfigurationSamples.Minimal.Replace("cluster_update_interval: 3", "cluster_update_interval: 1"));
        _root.Reload();

        Assert.Equal(1, changes);
        Assert.Single(Errors);
    }

    [Fact]
    public void Reload_StillInvalid_ReportsTheErrorAgainEachTime()
    {
        using var monitor = new ProxyOptionsMonitor(_root, _logs.CreateLogger<ProxyOptionsMonitor>());

        _dir.Write("patroni.yaml", ConfigurationSamples.Minimal.Replace("[leader]", "[lead]"));
        monitor.Reload();
        monitor.Reload();

        Assert.Equal(2, Errors.Count);
        Assert.All(Errors, e => Assert.Contains("unknown role 'lead'", e.Message));
    }

    [Fact]
    public void Reload_ValidEdit_AppliedOnceDespiteSeveralProviders()
    {
        var json = _dir.Write("appsettings.json", "{}");
        using var root = (ConfigurationRoot)new ConfigurationBuilder().AddJsonFile(json).AddYamlFile(_path).AddJsonFile(json).Build();
        using var monitor = new ProxyOptionsMonitor(root, _logs.CreateLogger<ProxyOptionsMonitor>());
        var changes = 0;
        using var _ = monitor.OnChange((_, _) => changes++);

        _dir.Write("patroni.yaml", ConfigurationSamples.Minimal.Replace("cluster_update_interval: 3", "cluster_update_interval: 1"));
        monitor.Reload();

        Assert.Equal(1, changes);
        Assert.Equal(1, monitor.CurrentValue.ClusterUpdateInterval);
    }

    [Fact]
    public void ConfigurationReload_InvalidEditWithSeveralProviders_LogsOneError()
    {
        var json = _dir.Write("appsettings.json", "{}");
        using var root = (ConfigurationRoot)new ConfigurationBuilder().AddJsonFile(json).AddYamlFile(_path).AddJsonFile(json).Build();
        using var monitor = new ProxyOptionsMonitor(root, _logs.CreateLogger<ProxyOptionsMonitor>());

        _dir.Write("patroni.yaml", ConfigurationSamples.Minimal.Replace("[leader]", "[lead]"));
        root.Reload();

        Assert.Single(Errors);
    }

    [Fact]
    public void Reload_JsonFileBroken_LogsAndKeepsRunning()
    {
        var json = _dir.Write("appsettings.json", "{}");
        using var root = (ConfigurationRoot)new ConfigurationBuilder().AddJsonFile(json).AddYamlFile(_path).Build();
        using var monitor = new ProxyOptionsMonitor(root, _logs.CreateLogger<ProxyOptionsMonitor>());
        var before = monitor.CurrentValue;

        _dir.Write("appsettings.json", "{ not json");
        monitor.Reload();

        Assert.Same(before, monitor.CurrentValue);
        Assert.Contains(Errors, e => e.Message.StartsWith("Re-reading the configuration failed", StringComparison.Ordinal));
    }

    [Fact]
    public void Constructor_UnknownKey_LogsWarning()
    {
        _dir.Write("patroni.yaml", ConfigurationSamples.Minimal + "\nclustr_update_interval: 1\n");
        _root.Reload();

        using var monitor = new ProxyOptionsMonitor(_root, _logs.CreateLogger<ProxyOptionsMonitor>());

        var warning = Assert.Single(_logs.Entries, e => e.Level == LogLevel.Warning);
        Assert.StartsWith("patroni.yaml: clustr_update_interval: unknown key", warning.Message);
    }
}
