using System.Diagnostics;
using PatroniYarp.IntegrationTests.Infrastructure;

namespace PatroniYarp.IntegrationTests.Admin;

/// <summary>
/// /ui open in Debian's headless Chromium, driven by playwright-core (ui/status-page.mjs) over stdin/stdout: one page
/// stays open, so the page's own refresh is what the tests see. Installs chromium with apt-get and the npm package
/// from the committed lock file when missing; never downloads a browser.
/// </summary>
internal sealed class StatusPageBrowser : IAsyncDisposable
{
    public const string ChromiumPath = "/usr/bin/chromium";
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(45);

    private readonly Process _node;

    private StatusPageBrowser(Process node) => _node = node;

    public static async Task<StatusPageBrowser> OpenAsync(string url)
    {
        var uiDirectory = Path.Combine(new PatroniClusterScript().RepoRoot, "tests", "PatroniYarp.IntegrationTests", "Admin", "ui");
        await EnsureChromiumAsync();
        if (!Directory.Exists(Path.Combine(uiDirectory, "node_modules", "playwright-core")))
        {
            await RunAsync(uiDirectory, "npm", "ci", "--no-audit", "--no-fund");
        }

        var startInfo = new ProcessStartInfo("node")
        {
            WorkingDirectory = uiDirectory,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        startInfo.ArgumentList.Add("status-page.mjs");
        startInfo.ArgumentList.Add(url);
        startInfo.ArgumentList.Add(ChromiumPath);
        var browser = new StatusPageBrowser(Process.Start(startInfo) ?? throw new InvalidOperationException("could not start node"));
        await browser.ExpectAsync("ready");
        return browser;
    }

    /// <summary>Waits (up to 30 s, inside the page) until the page names <paramref name="leader"/> as the cluster's leader.</summary>
    public Task WaitForLeaderAsync(string cluster, string leader) => CommandAsync($"leader {cluster} {leader}");

    /// <summary>Waits until the row of port <paramref name="port"/> shows <paramref name="text"/>.</summary>
    public Task WaitForPortTextAsync(string port, string text) => CommandAsync($"port {port} {text}");

    public Task ScreenshotAsync(string path) => CommandAsync($"screenshot {path}");

    public async ValueTask DisposeAsync()
    {
        if (!_node.HasExited)
        {
            _node.StandardInput.Close();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            try
            {
                await _node.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                _node.Kill(entireProcessTree: true);
            }
        }
        _node.Dispose();
    }

    private async Task CommandAsync(string command)
    {
        await _node.StandardInput.WriteLineAsync(command);
        await _node.StandardInput.FlushAsync();
        await ExpectAsync("ok");
    }

    private async Task ExpectAsync(string expected)
    {
        using var timeout = new CancellationTokenSource(CommandTimeout);
        string? line;
        try
        {
            line = await _node.StandardOutput.ReadLineAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"the browser script did not answer '{expected}' within {CommandTimeout}");
        }
        if (line != expected)
        {
            var stderr = _node.HasExited ? await _node.StandardError.ReadToEndAsync() : "";
            throw new InvalidOperationException($"the browser script answered '{line}', expected '{expected}'. {stderr}");
        }
    }

    private static async Task EnsureChromiumAsync()
    {
        if (File.Exists(ChromiumPath))
        {
            return;
        }
        // As scripts/patroni-cluster.sh does for its packages: Debian's own chromium, installed as root.
        await RunAsync("/", "apt-get", "update");
        await RunAsync("/", "apt-get", "install", "-y", "chromium");
    }

    private static async Task RunAsync(string directory, string file, params string[] args)
    {
        var startInfo = new ProcessStartInfo(file)
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        startInfo.Environment["DEBIAN_FRONTEND"] = "noninteractive";
        foreach (var arg in args)
        {
            startInfo.ArgumentList.Add(arg);
        }
        using var process = Process.Start(startInfo) ?? throw new InvalidOperationException($"could not start {file}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} exited with {process.ExitCode}:\n{await stdout}\n{await stderr}");
        }
    }
}
