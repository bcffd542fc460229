using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using PatroniYarp.Routing;
using Yarp.ReverseProxy.Configuration;

namespace PatroniYarp.Tests.Routing;

public class PatroniDestinationResolverTests
{
    private readonly FakeTimeProvider _time = new();

    private PatroniDestinationResolver Resolver() => new(_time, NullLogger<PatroniDestinationResolver>.Instance);

    private static DestinationConfig Destination(string address) => new()
    {
        Address = address,
        Metadata = new Dictionary<string, string> { [ProxyClusterIds.Metadata.Member] = "pg1", [ProxyClusterIds.Metadata.Role] = "leader" },
    };

    [Theory]
    [InlineData("tcp://127.0.0.1:5432")]
    [InlineData("tcp://[::1]:5432")]
    [InlineData("http://localhost:8008/patroni")]
    public async Task ResolveDestinationsAsync_IpLiteralOrHttp_PassesThroughWithoutRefresh(string address)
    {
        var destination = Destination(address);

        var resolved = await Resolver().ResolveDestinationsAsync(new Dictionary<string, DestinationConfig> { ["pg1"] = destination }, default);

        Assert.Same(destination, Assert.Single(resolved.Destinations, d => d.Key == "pg1").Value);
        Assert.Null(resolved.ChangeToken);
    }

    [Fact]
    public async Task ResolveDestinationsAsync_Localhost_ExpandsToLoopbackAddressesOfTheMember()
    {
        var resolved = await Resolver().ResolveDestinationsAsync(
            new Dictionary<string, DestinationConfig> { ["pg1"] = Destination("tcp://localhost:5432") }, default);

        Assert.NotEmpty(resolved.Destinations);
        Assert.All(resolved.Destinations, pair =>
        {
            Assert.True(ProxyClusterIds.TryParseTcpAddress(pair.Value.Address, out var host, out var port));
            Assert.True(IPAddress.IsLoopback(IPAddress.Parse(host)));
            Assert.Equal(5432, port);
            Assert.Equal("pg1", pair.Value.Metadata![ProxyClusterIds.Metadata.Member]);
            Assert.Equal("leader", pair.Value.Metadata[ProxyClusterIds.Metadata.Role]);
            Assert.Equal(resolved.Destinations.Count == 1 ? "pg1" : $"pg1[{host}]", pair.Key);
        });
    }

    [Fact]
    public async Task ResolveDestinationsAsync_HostName_ChangeTokenFiresAfterRefreshPeriod()
    {
        var resolved = await Resolver().ResolveDestinationsAsync(
            new Dictionary<string, DestinationConfig> { ["pg1"] = Destination("tcp://localhost:5432") }, default);

        Assert.NotNull(resolved.ChangeToken);
        Assert.False(resolved.ChangeToken.HasChanged);
        _time.Advance(PatroniDestinationResolver.RefreshPeriod);
        Assert.True(resolved.ChangeToken.HasChanged);
    }

    [Fact]
    public async Task ResolveDestinationsAsync_UnknownHost_KeepsDestinationUnresolvedAndOthersResolved()
    {
        var unknown = Destination("tcp://no-such-member.invalid:5432");
        var literal = Destination("tcp://127.0.0.2:5432");

        var resolved = await Resolver().ResolveDestinationsAsync(
            new Dictionary<string, DestinationConfig> { ["pg1"] = unknown, ["pg2"] = literal }, default);

        Assert.Same(unknown, resolved.Destinations["pg1"]);
        Assert.Same(literal, resolved.Destinations["pg2"]);
        // Tried again later: the name may appear in DNS.
        Assert.NotNull(resolved.ChangeToken);
    }
}
