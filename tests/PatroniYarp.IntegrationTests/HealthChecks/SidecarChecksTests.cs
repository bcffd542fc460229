using PatroniYarp.HealthChecks;
using PatroniYarp.IntegrationTests.Infrastructure;

namespace PatroniYarp.IntegrationTests.HealthChecks;

/// <summary>One PatroniYarp per member, each on a patroniglue config.yml whose backend is that member's Patroni.</summary>
public sealed class SidecarsFixture : IAsyncLifetime
{
    private readonly Dictionary<string, Sidecar> _sidecars = [];

    internal IReadOnlyDictionary<string, Sidecar> ByMember => _sidecars;

    public async Task InitializeAsync()
    {
        foreach (var member in PatroniClusterScript.Members)
        {
            _sidecars[member] = await Sidecar.StartAsync(PatroniClusterScript.ApiUrlOf(member));
        }
    }

    public async Task DisposeAsync()
    {
        foreach (var sidecar in _sidecars.Values)
        {
            await sidecar.DisposeAsync();
        }
    }
}

[Collection(RealClusterCollection.Name)]
public sealed class SidecarChecksTests(RealClusterFixture fixture, SidecarsFixture sidecars) : IClassFixture<SidecarsFixture>
{
    private readonly PatroniClusterScript _cluster = fixture.Cluster;

    public static TheoryData<string> Members => [.. PatroniClusterScript.Members];

    [Theory]
    [MemberData(nameof(Members))]
    public async Task Get_EveryCheck_SameStatusAsPatroniOnThatMember(string member)
    {
        var sidecar = sidecars.ByMember[member];
        var statuses = new List<string>();
        foreach (var check in PatroniChecks.All)
        {
            var status = await Checks.SameAsPatroniAsync(sidecar.Client, "GET", "/" + check, PatroniClusterScript.ApiUrlOf(member), "/" + check);
            statuses.Add($"{check}={status}");
        }
        // The leader and a replica differ where they must (Patroni's own answers, compared one by one above).
        var leader = await _cluster.LeaderAsync();
        Assert.Contains(member == leader ? "primary=200" : "primary=503", statuses);
        Assert.Contains(member == leader ? "replica=503" : "replica=200", statuses);
    }

    [Theory]
    [MemberData(nameof(Members))]
    public async Task Get_LagAndTagQueries_PassedOnToPatroni(string member)
    {
        var sidecar = sidecars.ByMember[member];
        foreach (var query in new[] { "/replica?lag=16MB", "/replica?lag=0", "/asynchronous?lag=1kB", "/replica?tag_nosuchtag=x", "/read-only?lag=1GB" })
        {
            await Checks.SameAsPatroniAsync(sidecar.Client, "GET", query, PatroniClusterScript.ApiUrlOf(member), query);
        }
    }

    [Theory]
    [MemberData(nameof(Members))]
    public async Task HeadAndOptions_SameStatusAsPatroniWithoutBody(string member)
    {
        var sidecar = sidecars.ByMember[member];
        foreach (var method in new[] { "HEAD", "OPTIONS" })
        {
            foreach (var check in new[] { "/primary", "/replica", "/read-only", "/sync", "/async", "/health" })
            {
                await Checks.SameAsPatroniAsync(sidecar.Client, method, check, PatroniClusterScript.ApiUrlOf(member), check);
                using var response = await sidecar.Client.SendAsync(new HttpRequestMessage(new HttpMethod(method), check));
                Assert.Empty(await response.Content.ReadAsByteArrayAsync());
            }
        }
    }

    [Fact]
    public async Task Frontend_ServesChecksAndHealthzButNotTheAdminApi()
    {
        var sidecar = sidecars.ByMember[PatroniClusterScript.Members[0]];

        Assert.Equal(200, await Checks.StatusAsync(sidecar.Client, "GET", "/healthz"));
        Assert.Equal(404, await Checks.StatusAsync(sidecar.Client, "GET", "/clusters"));
        Assert.Equal(404, await Checks.StatusAsync(sidecar.Client, "GET", "/update_clusters"));
        Assert.Equal(404, await Checks.StatusAsync(sidecar.Client, "GET", "/"));
    }

    [Fact]
    public async Task Help_PatroniGlueSpelling_PrintsUsage()
    {
        var (exitCode, output) = await PatroniYarpProcess.RunToExitAsync(null, "-help");

        Assert.Equal(0, exitCode);
        Assert.Contains("-config PATH", output);
    }
}
