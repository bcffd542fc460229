using System.Diagnostics;

namespace PatroniYarp.IntegrationTests.Infrastructure;

/// <summary>The real psql client, for what users type.</summary>
internal static class Psql
{
    /// <summary>Runs one query with <c>psql -XAtc</c> and returns its output; throws with stderr on failure.</summary>
    public static async Task<string> RunAsync(string connectionString, string sql)
    {
        var startInfo = new ProcessStartInfo("psql") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", connectionString, "-c", sql })
        {
            startInfo.ArgumentList.Add(arg);
        }
        using var process = Process.Start(startInfo)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await process.WaitForExitAsync(timeout.Token);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"psql exited with {process.ExitCode}: {await stderr}");
        }
        return await stdout;
    }
}
