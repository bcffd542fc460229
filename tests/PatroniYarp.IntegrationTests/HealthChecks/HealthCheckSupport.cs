using System.Diagnostics;
using System.Globalization;
using PatroniYarp.IntegrationTests.Infrastructure;
using PatroniYarp.Testing;

namespace PatroniYarp.IntegrationTests.HealthChecks;

/// <summary>patroniglue config.yml files for the tests.</summary>
internal static class PatroniGlueYaml
{
    /// <summary>A sidecar: frontend on 127.0.0.1:<paramref name="frontendPort"/>, backend the given Patroni REST API.</summary>
    public static string Sidecar(int frontendPort, string patroniUrl, string frontendExtra = "", string backendExtra = "", double ttl = 0.5)
    {
        var backend = new Uri(patroniUrl);
        return $"""
            ---
            frontend:
              host: 127.0.0.1
              port: {frontendPort}
            {frontendExtra}
            backend:
              host: {backend.Host}
              port: {backend.Port}
              scheme: {backend.Scheme}
            {backendExtra}
            cache:
              ttl: {ttl.ToString(CultureInfo.InvariantCulture)}
              interval: 0.25
            """;
    }
}

/// <summary>One PatroniYarp started on a patroniglue file with patroniglue's own command line (-config FILE -verbose).</summary>
internal sealed class Sidecar : IAsyncDisposable
{
    private readonly string _directory;

    private Sidecar(PatroniYarpProcess process, string directory, int port)
    {
        Process = process;
        _directory = directory;
        Port = port;
        Client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(10) };
    }

    public PatroniYarpProcess Process { get; }

    public int Port { get; }

    /// <summary>A client for the frontend.</summary>
    public HttpClient Client { get; }

    public static async Task<Sidecar> StartAsync(string patroniUrl, double ttl = 0.5)
    {
        var port = FreePort.Next();
        var directory = Directory.CreateTempSubdirectory("patroniyarp-glue-").FullName;
        var config = Path.Combine(directory, "config.yml");
        await File.WriteAllTextAsync(config, PatroniGlueYaml.Sidecar(port, patroniUrl, ttl: ttl));
        // No admin listener with a patroniglue file alone: wait on the frontend's own /healthz.
        var process = await PatroniYarpProcess.StartAsync(null, port, "/healthz", "-config", config, "-verbose");
        return new Sidecar(process, directory, port);
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Process.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }
}

/// <summary>Status codes of one request, the way a load balancer reads them.</summary>
internal static class Checks
{
    private static readonly HttpClient Direct = new() { Timeout = TimeSpan.FromSeconds(10) };

    public static async Task<int> StatusAsync(HttpClient client, string method, string pathAndQuery)
    {
        using var response = await client.SendAsync(new HttpRequestMessage(new HttpMethod(method), pathAndQuery));
        return (int)response.StatusCode;
    }

    /// <summary>Patroni's own answer to GET on its REST API.</summary>
    public static async Task<int> PatroniStatusAsync(string patroniUrl, string pathAndQuery)
    {
        using var response = await Direct.GetAsync(patroniUrl + pathAndQuery);
        return (int)response.StatusCode;
    }

    /// <summary>
    /// Waits until PatroniYarp's status for <paramref name="yarpPath"/> equals Patroni's for <paramref name="patroniPath"/>
    /// (PatroniYarp may be one ttl or poll behind), and returns it.
    /// </summary>
    public static async Task<int> SameAsPatroniAsync(HttpClient yarp, string method, string yarpPath, string patroniUrl, string patroniPath) =>
        (int)await Eventually.ValueAsync<object>(async () =>
        {
            var expected = await PatroniStatusAsync(patroniUrl, patroniPath);
            var actual = await StatusAsync(yarp, method, yarpPath);
            return actual == expected ? actual : null;
        }, TimeSpan.FromSeconds(15), $"{method} {yarpPath} to answer as Patroni's GET {patroniUrl}{patroniPath}");
}

/// <summary>Debian's HAProxy as a child process on a generated configuration, ended by its PID.</summary>
internal sealed class Haproxy : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _directory;

    private Haproxy(Process process, string directory)
    {
        _process = process;
        _directory = directory;
    }

    public static Haproxy Start(string config)
    {
        var directory = Directory.CreateTempSubdirectory("patroniyarp-haproxy-").FullName;
        var path = Path.Combine(directory, "haproxy.cfg");
        File.WriteAllText(path, config);
        var startInfo = new ProcessStartInfo("haproxy") { RedirectStandardOutput = true, RedirectStandardError = true };
        // -db: foreground, no daemon, so that the PID is HAProxy's own.
        foreach (var arg in new[] { "-db", "-f", path })
        {
            startInfo.ArgumentList.Add(arg);
        }
        var process = System.Diagnostics.Process.Start(startInfo) ?? throw new InvalidOperationException("could not start haproxy");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new Haproxy(process, directory);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
        Directory.Delete(_directory, recursive: true);
    }
}

/// <summary>The openssl command-line client, for TLS versions and ciphers .NET's own client would not offer.</summary>
internal static class OpenSsl
{
    /// <summary>Runs <c>openssl s_client</c> against 127.0.0.1:<paramref name="port"/>; true when the handshake succeeded.</summary>
    public static async Task<(bool Connected, string Output)> ConnectAsync(int port, params string[] options)
    {
        var startInfo = new ProcessStartInfo("openssl")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var arg in new[] { "s_client", "-connect", $"127.0.0.1:{port}", "-brief" }.Concat(options))
        {
            startInfo.ArgumentList.Add(arg);
        }
        using var process = Process.Start(startInfo)!;
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await process.WaitForExitAsync(timeout.Token);
        var output = await stdout + await stderr;
        return (process.ExitCode == 0 && output.Contains("CONNECTION ESTABLISHED", StringComparison.Ordinal), output);
    }

    /// <summary>A self-signed certificate for 127.0.0.1 as PEM files in <paramref name="directory"/>.</summary>
    public static async Task<(string Cert, string Key)> SelfSignedAsync(string directory)
    {
        var cert = Path.Combine(directory, "cert.pem");
        var key = Path.Combine(directory, "key.pem");
        var startInfo = new ProcessStartInfo("openssl") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1" })
        {
            startInfo.ArgumentList.Add(arg);
        }
        using var process = Process.Start(startInfo)!;
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"openssl req failed: {await stderr}");
        }
        return (cert, key);
    }
}
