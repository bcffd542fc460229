using PatroniYarp.HealthChecks;
using PatroniYarp.IntegrationTests.Infrastructure;
using PatroniYarp.Testing;

namespace PatroniYarp.IntegrationTests.HealthChecks;

/// <summary>
/// One PatroniYarp on a patroni_proxy file answers /clusters/demo/members/{member}/{check} for every member from the
/// cluster state it polls; each answer must be what that member's own Patroni says.
/// </summary>
[Collection(RealClusterCollection.Name)]
public sealed class ClusterModeChecksTests(RealClusterFixture fixture) : IAsyncLifetime
{
    // Patroni 3.0.2 predates quorum commit and answers /read-only-quorum as /read-only (200 on every replica);
    // PatroniYarp follows Patroni 4, where only a quorum standby or the leader is 200. Compared in the unit tests.
    private static readonly string[] ComparedChecks = [.. PatroniChecks.All.Where(c => c != "read-only-quorum")];

    private readonly PatroniClusterScript _cluster = fixture.Cluster;
    private PatroniYarpProcess _proxy = null!;

    public static TheoryData<string> Members => [.. PatroniClusterScript.Members];

    public async Task InitializeAsync()
    {
        var admin = FreePort.Next();
        _proxy = await PatroniYarpProcess.StartAsync(TestYaml.Config(admin, TestYaml.Port("master", FreePort.Next(), "leader")), admin);
    }

    public async Task DisposeAsync() => await _proxy.DisposeAsync();

    [Theory]
    [MemberData(nameof(Members))]
    public async Task Get_EveryCheck_SameStatusAsThatMembersPatroni(string member)
    {
        foreach (var check in ComparedChecks)
        {
            await Checks.SameAsPatroniAsync(_proxy.Admin, "GET", $"/clusters/demo/members/{member}/{check}",
                PatroniClusterScript.ApiUrlOf(member), "/" + check);
        }
    }

    [Theory]
    [MemberData(nameof(Members))]
    public async Task Get_LagAndTagQueries_SameStatusAsThatMembersPatroni(string member)
    {
        foreach (var query in new[] { "replica?lag=16MB", "replica?lag=0", "asynchronous?lag=1kB", "read-only?lag=1GB", "replica?tag_nosuchtag=x" })
        {
            await Checks.SameAsPatroniAsync(_proxy.Admin, "GET", $"/clusters/demo/members/{member}/{query}",
                PatroniClusterScript.ApiUrlOf(member), "/" + query);
        }
    }

    [Theory]
    [MemberData(nameof(Members))]
    public async Task HeadAndOptions_SameStatusAsThatMembersPatroni(string member)
    {
        foreach (var method in new[] { "HEAD", "OPTIONS" })
        {
            foreach (var check in new[] { "primary", "replica", "read-only", "sync", "async", "health" })
            {
                await Checks.SameAsPatroniAsync(_proxy.Admin, method, $"/clusters/demo/members/{member}/{check}",
                    PatroniClusterScript.ApiUrlOf(member), "/" + check);
            }
        }
    }
}
