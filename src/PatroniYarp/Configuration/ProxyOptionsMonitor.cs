using System.Collections.Immutable;
using System.Text;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;

namespace PatroniYarp.Configuration;

/// <summary>
/// The one <see cref="IOptionsMonitor{ProxyOptions}"/>: it only ever hands out a validated configuration. The first
/// load throws <see cref="ConfigurationException"/> with every error. On a reload (file change, SIGHUP) an invalid
/// configuration is logged once and the running one stays; listeners hear only of valid configurations that differ.
/// The standard OptionsMonitor would instead throw from its change callback and then from every CurrentValue.
/// </summary>
internal sealed partial class ProxyOptionsMonitor : IOptionsMonitor<ProxyOptions>, IDisposable
{
    private readonly IConfigurationRoot _configuration;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private readonly IDisposable _changeRegistration;
    private ImmutableList<Action<ProxyOptions, string?>> _listeners = [];
    private volatile Applied _current;

    // Guarded by _gate. The input last looked at, so that the several change events of one reload log one error.
    private string _lastInput;
    private bool _reloading;

    public ProxyOptionsMonitor(IConfiguration configuration, ILogger<ProxyOptionsMonitor> logger)
    {
        _configuration = configuration as IConfigurationRoot
            ?? throw new ArgumentException("The configuration must be the root, to name the file each key comes from.", nameof(configuration));
        _logger = logger;

        var loaded = ProxyOptionsLoader.Load(_configuration);
        LogWarnings(loaded.Warnings);
        if (loaded.Options is null)
        {
            throw new ConfigurationException(string.Join(Environment.NewLine, loaded.Errors));
        }
        _current = new Applied(loaded.Options, ProxyOptionsJson.Serialize(loaded.Options));
        _lastInput = Fingerprint(_configuration);
        _changeRegistration = ChangeToken.OnChange(_configuration.GetReloadToken, () => Apply(force: false));
    }

    public ProxyOptions CurrentValue => _current.Options;

    /// <summary>There is one, unnamed, configuration: every name gets it.</summary>
    public ProxyOptions Get(string? name) => CurrentValue;

    public IDisposable OnChange(Action<ProxyOptions, string?> listener)
    {
        ImmutableInterlocked.Update(ref _listeners, (list, item) => list.Add(item), listener);
        return new Registration(this, listener);
    }

    /// <summary>Re-reads every configuration source at once (SIGHUP) and reports the outcome, even when unchanged.</summary>
    public void Reload()
    {
        lock (_gate)
        {
            // Each provider raises its own change event during Reload(); one look at the end is enough.
            _reloading = true;
            try
            {
                _configuration.Reload();
            }
            catch (Exception ex)
            {
                // A JSON file that no longer parses stops Reload() half-way; what was read still gets validated below.
                Log.ReadFailed(_logger, ex.Message, ex);
            }
            finally
            {
                _reloading = false;
            }
            Apply(force: true);
        }
    }

    public void Dispose() => _changeRegistration.Dispose();

    private void Apply(bool force)
    {
        lock (_gate)
        {
            if (_reloading)
            {
                return;
            }
            var input = Fingerprint(_configuration);
            if (!force && input == _lastInput)
            {
                return;
            }
            _lastInput = input;

            var loaded = ProxyOptionsLoader.Load(_configuration);
            LogWarnings(loaded.Warnings);
            if (loaded.Options is null)
            {
                Log.ReloadRejected(_logger, string.Join(Environment.NewLine, loaded.Errors.Select(error => "  " + error)));
                return;
            }

            var applied = new Applied(loaded.Options, ProxyOptionsJson.Serialize(loaded.Options));
            if (applied.Json == _current.Json)
            {
                Log.Unchanged(_logger);
                return;
            }
            _current = applied;
            Log.Applied(_logger, applied.Options.Clusters.Count);

            // Inside the lock, so that listeners see configurations in the order they were applied.
            foreach (var listener in _listeners)
            {
                try
                {
                    listener(applied.Options, Options.DefaultName);
                }
                catch (Exception ex)
                {
                    Log.ListenerFailed(_logger, ex);
                }
            }
        }
    }

    private void LogWarnings(IReadOnlyList<string> warnings)
    {
        foreach (var warning in warnings)
        {
            Log.Warning(_logger, warning);
        }
    }

    /// <summary>All keys and values and any parse error: equal fingerprints bind to equal options.</summary>
    private static string Fingerprint(IConfigurationRoot configuration)
    {
        var text = new StringBuilder();
        foreach (var (key, value) in configuration.AsEnumerable())
        {
            text.Append(key).Append('=').Append(value).Append('\n');
        }
        foreach (var yaml in configuration.Providers.OfType<YamlConfigurationProvider>())
        {
            text.Append(yaml.LoadError?.Message).Append('\n');
        }
        return text.ToString();
    }

    private sealed record Applied(ProxyOptions Options, string Json);

    private sealed class Registration(ProxyOptionsMonitor monitor, Action<ProxyOptions, string?> listener) : IDisposable
    {
        public void Dispose() => ImmutableInterlocked.Update(ref monitor._listeners, (list, item) => list.Remove(item), listener);
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Error, "Invalid configuration; keeping the running one:\n{Errors}", EventName = "ConfigurationRejected")]
        public static partial void ReloadRejected(ILogger logger, string errors);

        [LoggerMessage(2, LogLevel.Information, "Configuration reloaded: {ClusterCount} cluster(s)", EventName = "ConfigurationApplied")]
        public static partial void Applied(ILogger logger, int clusterCount);

        [LoggerMessage(3, LogLevel.Debug, "Configuration re-read; nothing changed", EventName = "ConfigurationUnchanged")]
        public static partial void Unchanged(ILogger logger);

        [LoggerMessage(4, LogLevel.Warning, "{Warning}", EventName = "ConfigurationWarning")]
        public static partial void Warning(ILogger logger, string warning);

        [LoggerMessage(5, LogLevel.Error, "Re-reading the configuration failed: {Reason}", EventName = "ConfigurationReadFailed")]
        public static partial void ReadFailed(ILogger logger, string reason, Exception exception);

        [LoggerMessage(6, LogLevel.Error, "A configuration change listener failed", EventName = "ConfigurationListenerFailed")]
        public static partial void ListenerFailed(ILogger logger, Exception exception);
    }
}
