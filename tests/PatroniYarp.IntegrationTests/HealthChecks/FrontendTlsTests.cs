using PatroniYarp.IntegrationTests.Infrastructure;
using PatroniYarp.Testing;

namespace PatroniYarp.IntegrationTests.HealthChecks;

/// <summary>
/// The patroniglue frontend over HTTPS with a self-signed certificate, tls-min-version and tls-ciphers, checked with
/// openssl's client; and a second PatroniYarp using it as an https backend with insecure.
/// </summary>
[Collection(RealClusterCollection.Name)]
public sealed class FrontendTlsTests : IAsyncLifetime
{
    private const string Cipher = "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256";
    private const string CipherOpenSslName = "ECDHE-RSA-AES128-GCM-SHA256";

    private readonly string _directory = Directory.CreateTempSubdirectory("patroniyarp-tls-").FullName;
    private readonly int _httpsPort = FreePort.Next();
    private readonly int _adminPort = FreePort.Next();
    private PatroniYarpProcess _https = null!;

    public async Task InitializeAsync()
    {
        var (cert, key) = await OpenSsl.SelfSignedAsync(_directory);
        var yaml = $"listen_address: 127.0.0.1:{_adminPort}\n" + PatroniGlueYaml.Sidecar(_httpsPort, PatroniClusterScript.Pg0ApiUrl, frontendExtra: $"""
              certfile: {cert}
              keyfile: {key}
              tls-min-version: TLSv1.2
              tls-ciphers: [{Cipher}]
            """).Replace("---\n", "");
        _https = await PatroniYarpProcess.StartAsync(yaml, _adminPort);
    }

    public async Task DisposeAsync()
    {
        await _https.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task Tls11Client_Refused()
    {
        // SECLEVEL=0 lets openssl's client offer TLS 1.1 at all: the refusal must come from the server.
        var (connected, output) = await OpenSsl.ConnectAsync(_httpsPort, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0");

        Assert.False(connected, output);
    }

    [Fact]
    public async Task Tls12Client_ConfiguredCipherOnly()
    {
        var (connected, output) = await OpenSsl.ConnectAsync(_httpsPort, "-tls1_2");
        Assert.True(connected, output);
        Assert.Contains(CipherOpenSslName, output);

        var (otherConnected, otherOutput) = await OpenSsl.ConnectAsync(_httpsPort, "-tls1_2", "-cipher", "ECDHE-RSA-AES256-GCM-SHA384");
        Assert.False(otherConnected, otherOutput);
    }

    [Fact]
    public async Task HttpsFrontend_AnswersChecks_AndServesAsHttpsBackendWithInsecure()
    {
        using var handler = new HttpClientHandler { ServerCertificateCustomValidationCallback = HttpClientHandler.DangerousAcceptAnyServerCertificateValidator };
        using var client = new HttpClient(handler) { BaseAddress = new Uri($"https://127.0.0.1:{_httpsPort}") };
        await Checks.SameAsPatroniAsync(client, "GET", "/primary", PatroniClusterScript.Pg0ApiUrl, "/primary");
        // The checks are served on the admin listener too, and the admin API there alone.
        await Checks.SameAsPatroniAsync(_https.Admin, "GET", "/primary", PatroniClusterScript.Pg0ApiUrl, "/primary");
        Assert.Equal(200, await Checks.StatusAsync(_https.Admin, "GET", "/clusters"));
        Assert.Equal(404, await Checks.StatusAsync(client, "GET", "/clusters"));

        // A second PatroniYarp whose backend is the first one's HTTPS frontend (self-signed: insecure).
        var frontPort = FreePort.Next();
        var chained = PatroniGlueYaml.Sidecar(frontPort, $"https://127.0.0.1:{_httpsPort}", backendExtra: "  insecure: true");
        await using var front = await PatroniYarpProcess.StartAsync(chained, frontPort, "/healthz");
        foreach (var check in new[] { "/primary", "/replica", "/health" })
        {
            await Checks.SameAsPatroniAsync(front.Admin, "GET", check, PatroniClusterScript.Pg0ApiUrl, check);
        }
    }
}
