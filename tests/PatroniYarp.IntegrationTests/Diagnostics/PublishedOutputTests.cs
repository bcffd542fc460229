using System.Diagnostics;
using System.Text.Json;
using PatroniYarp.IntegrationTests.Infrastructure;
using PatroniYarp.Testing;

namespace PatroniYarp.IntegrationTests.Diagnostics;

/// <summary>
/// The container without Docker: runs the Dockerfile's own `RUN dotnet publish`, starts its ENTRYPOINT from the
/// published output with a configuration at the mounted path's stand-in, and runs its HEALTHCHECK command.
/// </summary>
[Collection(RealClusterCollection.Name)]
public sealed class PublishedOutputTests(RealClusterFixture fixture) : IAsyncLifetime
{
    private const string ContainerAppDirectory = "/app";
    private const string ContainerConfigPath = "/etc/patroniyarp/patroni.yaml";
    private const string ContainerHealthUrl = "http://127.0.0.1:8009/healthz";

    private readonly string _repoRoot = fixture.Cluster.RepoRoot;
    private readonly string _directory = Directory.CreateTempSubdirectory("patroniyarp-publish-").FullName;

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync()
    {
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task DockerfileSteps_PublishedOutput_StartsCleanAndPassesHealthCheck()
    {
        var dockerfile = await File.ReadAllLinesAsync(Path.Combine(_repoRoot, "Dockerfile"));
        var app = Path.Combine(_directory, "app");
        var publish = Instruction(dockerfile, "RUN ").Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(arg => arg == ContainerAppDirectory ? app : arg).ToArray();
        await RunAsync(publish[0], publish[1..], TimeSpan.FromMinutes(5));

        var admin = FreePort.Next();
        var config = Path.Combine(_directory, "patroni.yaml");
        await File.WriteAllTextAsync(config, TestYaml.Config(admin, TestYaml.Port("master", FreePort.Next(), "leader")));
        var entrypoint = ContainerCommand(Instruction(dockerfile, "ENTRYPOINT "), app, config, admin);
        Assert.Equal(["dotnet", Path.Combine(app, "PatroniYarp.dll"), config], entrypoint);

        // A fresh container's home: nothing in it yet.
        var home = Directory.CreateDirectory(Path.Combine(_directory, "home")).FullName;
        var startInfo = new ProcessStartInfo(entrypoint[0]) { WorkingDirectory = app, RedirectStandardOutput = true, RedirectStandardError = true };
        startInfo.Environment["HOME"] = home;
        foreach (var arg in entrypoint[1..])
        {
            startInfo.ArgumentList.Add(arg);
        }
        using var process = Process.Start(startInfo)!;
        var output = new List<string>();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.Add(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.Add(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{admin}") };
            await Eventually.UntilAsync(async () =>
            {
                Assert.False(process.HasExited, $"the published app exited: {string.Join('\n', output)}");
                using var response = await http.GetAsync("/healthz");
                using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
                return json.RootElement.GetProperty("status").GetString() == "Healthy";
            }, TimeSpan.FromSeconds(60), "the published app's /healthz to say Healthy");

            var check = Instruction(dockerfile, "HEALTHCHECK ");
            var healthcheck = ContainerCommand(check[(check.IndexOf("CMD ", StringComparison.Ordinal) + 4)..], app, config, admin);
            Assert.Equal(0, await RunAsync(healthcheck[0], healthcheck[1..], TimeSpan.FromMinutes(1)));

            // A stateless proxy: a healthy start warns of nothing and leaves nothing on disk (the root filesystem may be read-only).
            lock (output)
            {
                Assert.DoesNotContain(output, line => line.StartsWith("warn:", StringComparison.Ordinal));
            }
            Assert.Empty(Directory.EnumerateFileSystemEntries(home, "*", SearchOption.AllDirectories));
        }
        finally
        {
            process.Kill();
            await process.WaitForExitAsync();
        }
    }

    /// <summary>The rest of the one Dockerfile line that starts with <paramref name="instruction"/>.</summary>
    private static string Instruction(string[] dockerfile, string instruction) =>
        Assert.Single(dockerfile, line => line.StartsWith(instruction, StringComparison.Ordinal))[instruction.Length..].Trim();

    /// <summary>A JSON-form command with the container's paths and admin port replaced by this test's.</summary>
    private static string[] ContainerCommand(string json, string app, string config, int admin) =>
        [.. JsonSerializer.Deserialize<string[]>(json)!.Select(arg => arg
            .Replace(ContainerAppDirectory + "/", app + "/", StringComparison.Ordinal)
            .Replace(ContainerConfigPath, config, StringComparison.Ordinal)
            .Replace(ContainerHealthUrl, $"http://127.0.0.1:{admin}/healthz", StringComparison.Ordinal))];

    private async Task<int> RunAsync(string file, string[] args, TimeSpan timeout)
    {
        var startInfo = new ProcessStartInfo(file) { WorkingDirectory = _repoRoot, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
        {
            startInfo.ArgumentList.Add(arg);
        }
        using var process = Process.Start(startInfo)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        await process.WaitForExitAsync(cts.Token);
        Assert.True(process.ExitCode == 0, $"{file} {string.Join(' ', args)} exited with {process.ExitCode}:\n{await stdout}\n{await stderr}");
        return process.ExitCode;
    }
}
