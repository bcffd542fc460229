using PatroniYarp.Routing;

namespace PatroniYarp.Tests.Routing;

public class ProxyClusterIdsTests
{
    [Theory]
    [InlineData("127.0.0.1", 5432, "tcp://127.0.0.1:5432")]
    [InlineData("::1", 5432, "tcp://[::1]:5432")]
    [InlineData("[::1]", 5432, "tcp://[::1]:5432")]
    [InlineData("db1.example", 6543, "tcp://db1.example:6543")]
    public void TcpAddress_Host_FormatsUriWithBracketedIpv6(string host, int port, string expected)
    {
        Assert.Equal(expected, ProxyClusterIds.TcpAddress(host, port));
    }

    [Theory]
    [InlineData("tcp://127.0.0.1:5432", "127.0.0.1", 5432)]
    [InlineData("tcp://[::1]:5433", "::1", 5433)]
    [InlineData("tcp://db1.example:6543", "db1.example", 6543)]
    public void TryParseTcpAddress_TcpAddress_ReturnsHostAndPort(string address, string host, int port)
    {
        Assert.True(ProxyClusterIds.TryParseTcpAddress(address, out var parsedHost, out var parsedPort));
        Assert.Equal(host, parsedHost);
        Assert.Equal(port, parsedPort);
    }

    [Theory]
    [InlineData("http://127.0.0.1:8008")]
    [InlineData("tcp://127.0.0.1")]
    [InlineData("not a uri")]
    [InlineData(null)]
    public void TryParseTcpAddress_OtherText_ReturnsFalse(string? address)
    {
        Assert.False(ProxyClusterIds.TryParseTcpAddress(address, out _, out _));
    }
}
