using System.Net;
using PatroniYarp.Tcp;

namespace PatroniYarp.Tests.Tcp;

public class AddressTests
{
    [Theory]
    [InlineData("tcp://127.0.0.1:5432", "127.0.0.1:5432")]
    [InlineData("tcp://[::1]:5432", "[::1]:5432")]
    [InlineData("TCP://10.0.0.5:5433/", "10.0.0.5:5433")]
    [InlineData("127.0.0.1:5432", "127.0.0.1:5432")]
    public void TryParse_IpDestination_GivesIpEndPoint(string address, string expected)
    {
        Assert.True(DestinationAddress.TryParse(address, out var endPoint));
        Assert.Equal(IPEndPoint.Parse(expected), endPoint);
    }

    [Fact]
    public void TryParse_HostName_GivesDnsEndPoint()
    {
        Assert.True(DestinationAddress.TryParse("tcp://pg-1.example:5432", out var endPoint));
        Assert.Equal(new DnsEndPoint("pg-1.example", 5432), endPoint);
    }

    [Theory]
    [InlineData("tcp://127.0.0.1")]
    [InlineData("tcp://[::1]")]
    [InlineData("tcp://host")]
    [InlineData("tcp://host:0")]
    [InlineData("")]
    public void TryParse_NoPort_Fails(string address) => Assert.False(DestinationAddress.TryParse(address, out _));
}
