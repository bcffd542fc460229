using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Json;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace PatroniYarp.IntegrationTests.Infrastructure;

/// <summary>
/// PatroniYarp as users run it: its own process (the built PatroniYarp.dll beside the tests), a YAML file in a
/// temporary folder, real signals. Ended by its PID on dispose.
/// </summary>
internal sealed class PatroniYarpProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();

    private PatroniYarpProcess(Process process, string directory, string configPath, int adminPort)
    {
        _process = process;
        Directory = directory;
        ConfigPath = configPath;
        AdminPort = adminPort;
        Admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{adminPort}"), Timeout = TimeSpan.FromSeconds(10) };
    }

    public string Directory { get; }

    public string ConfigPath { get; }

    public int AdminPort { get; }

    /// <summary>A client for the admin API on listen_address.</summary>
    public HttpClient Admin { get; }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    /// <summary>Every line the process wrote to stdout or stderr so far.</summary>
    public IReadOnlyCollection<string> Output => _output;

    /// <summary>
    /// Starts PatroniYarp on <paramref name="yaml"/>, which must set listen_address to 127.0.0.1:<paramref name="adminPort"/>,
    /// and waits until its admin API answers.
    /// </summary>
    public static Task<PatroniYarpProcess> StartAsync(string yaml, int adminPort, params string[] extraArgs) =>
        StartAsync(yaml, adminPort, readyPath: "/", extraArgs);

    /// <summary>As <see cref="StartAsync(string, int, string[])"/>, under an open-files limit (soft and hard, as ulimit -n sets them).</summary>
    public static Task<PatroniYarpProcess> StartAsync(string yaml, int adminPort, int openFilesLimit, params string[] extraArgs) =>
        StartAsync(yaml, adminPort, "/", openFilesLimit, extraArgs);

    /// <summary>
    /// Starts PatroniYarp (on <paramref name="yaml"/> as a positional argument when given, else on what
    /// <paramref name="extraArgs"/> say) and waits until <paramref name="readyPath"/> answers 2xx on
    /// 127.0.0.1:<paramref name="adminPort"/>; <see cref="Admin"/> then talks to that port. For configurations without
    /// an admin listener, e.g. a patroniglue file alone, which listens on its frontend only.
    /// </summary>
    public static Task<PatroniYarpProcess> StartAsync(string? yaml, int adminPort, string readyPath, params string[] extraArgs) =>
        StartAsync(yaml, adminPort, readyPath, openFilesLimit: null, extraArgs);

    /// <summary>
    /// Starts PatroniYarp on the configuration file at <paramref name="configPath"/> from <paramref name="workingDirectory"/>
    /// (its content root, as systemd's is / unless a unit sets one), optionally under an open-files limit, and waits
    /// until its admin API answers.
    /// </summary>
    public static Task<PatroniYarpProcess> StartInAsync(string workingDirectory, string configPath, int adminPort, int? openFilesLimit = null) =>
        StartAsync(yaml: null, adminPort, "/", openFilesLimit, [configPath], workingDirectory);

    private static async Task<PatroniYarpProcess> StartAsync(string? yaml, int adminPort, string readyPath, int? openFilesLimit,
        string[] extraArgs, string? workingDirectory = null)
    {
        var process = Launch(yaml, extraArgs, openFilesLimit, out var directory, out var configPath, workingDirectory);
        var started = new PatroniYarpProcess(process, directory, configPath, adminPort);
        started.Capture();
        try
        {
            await Eventually.UntilAsync(async () =>
            {
                if (process.HasExited)
                {
                    throw new InvalidOperationException($"PatroniYarp exited with {process.ExitCode}:\n{started.OutputText}");
                }
                using var response = await started.Admin.GetAsync(readyPath);
                return response.IsSuccessStatusCode;
            }, TimeSpan.FromSeconds(30), "PatroniYarp's admin API to answer");
        }
        catch (TimeoutException ex)
        {
            await started.DisposeAsync();
            throw new TimeoutException($"{ex.Message}\n{started.OutputText}", ex);
        }
        return started;
    }

    /// <summary>Runs PatroniYarp to its end (for start-up errors and --check-config) and returns its exit code and output.</summary>
    public static async Task<(int ExitCode, string Output)> RunToExitAsync(string? yaml, params string[] args)
    {
        var process = Launch(yaml, args, openFilesLimit: null, out _, out _, workingDirectory: null);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout + await stderr);
    }

    /// <summary>Replaces the configuration file (PatroniYarp reloads it on change).</summary>
    public Task WriteConfigAsync(string yaml) => File.WriteAllTextAsync(ConfigPath, yaml);

    public void Signal(PosixSignalNumber signal)
    {
        if (Kill(_process.Id, (int)signal) != 0)
        {
            throw new InvalidOperationException($"kill({_process.Id}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    public string OutputText => string.Join('\n', _output);

    public Task WaitForOutputAsync(Func<string, bool> match, string what, TimeSpan? timeout = null) =>
        Eventually.UntilAsync(() => Task.FromResult(_output.Any(match)), timeout ?? TimeSpan.FromSeconds(20), what);

    public async Task<JsonElement> GetJsonAsync(string path)
    {
        using var response = await Admin.GetAsync(path);
        response.EnsureSuccessStatusCode();
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    public async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        Admin.Dispose();
        if (!_process.HasExited)
        {
            Kill(_process.Id, (int)PosixSignalNumber.SIGTERM);
            if (!await WaitForExitAsync(TimeSpan.FromSeconds(15)))
            {
                _process.Kill();
                await WaitForExitAsync(TimeSpan.FromSeconds(5));
            }
        }
        _process.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static Process Launch(string? yaml, string[] args, int? openFilesLimit, out string directory, out string configPath,
        string? workingDirectory)
    {
        directory = System.IO.Directory.CreateTempSubdirectory("patroniyarp-it-").FullName;
        configPath = Path.Combine(directory, "patroni.yaml");
        // prlimit (util-linux) runs dotnet under the limit, as a shell's ulimit -n would.
        var startInfo = new ProcessStartInfo(openFilesLimit is null ? "dotnet" : "prlimit")
        {
            // The content root is the build output, where appsettings.json is, as in the published container.
            WorkingDirectory = workingDirectory ?? AppContext.BaseDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (openFilesLimit is { } limit)
        {
            startInfo.ArgumentList.Add($"--nofile={limit}:{limit}");
            startInfo.ArgumentList.Add("dotnet");
        }
        startInfo.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "PatroniYarp.dll"));
        if (yaml is not null)
        {
            File.WriteAllText(configPath, yaml);
            startInfo.ArgumentList.Add(configPath);
        }
        foreach (var arg in args)
        {
            startInfo.ArgumentList.Add(arg);
        }
        startInfo.Environment["DOTNET_ENVIRONMENT"] = "Production";
        startInfo.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        return Process.Start(startInfo) ?? throw new InvalidOperationException("could not start PatroniYarp");
    }

    private void Capture()
    {
        _process.OutputDataReceived += (_, e) => { if (e.Data is not null) _output.Enqueue(e.Data); };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) _output.Enqueue(e.Data); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}

internal enum PosixSignalNumber
{
    SIGHUP = 1,
    SIGKILL = 9,
    SIGTERM = 15,
}
