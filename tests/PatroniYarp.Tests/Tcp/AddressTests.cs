using System.Net;
using PatroniYarp.Tcp;

namespace PatroniYarp.Tests.Tcp;

public class AddressTests
{
    [Theory]
    [InlineData("0.0.0.0:6432", "http://0.0.0.0:6432")]
    [InlineData("127.0.0.1:6432", "http://127.0.0.1:6432")]
    [InlineData("[::1]:6432", "http://[::1]:6432")]
    [InlineData("[::]:6432", "http://[::]:6432")]
    [InlineData("*:6432", "http://*:6432")]
    [InlineData("localhost:6432", "http://localhost:6432")]
    [InlineData(":6432", "http://*:6432")]
    public void TryToKestrelUrl_ListenForms_TranslatesToHttpUrl(string listen, string expected)
    {
        Assert.True(ListenAddress.TryToKestrelUrl(listen, out var url, out _));
        Assert.Equal(expected, url);
    }

    [Theory]
    [InlineData("")]
    [InlineData("6432")]
    [InlineData("::1:6432")]
    [InlineData("[::1]6432")]
    [InlineData("[127.0.0.1]:6432")]
    [InlineData("127.0.0.1:port")]
    [InlineData("127.0.0.1:70000")]
    public void TryToKestrelUrl_BadListen_NamesTheValue(string listen)
    {
        Assert.False(ListenAddress.TryToKestrelUrl(listen, out _, out var error));
        Assert.Contains($"'{listen}'", error);
    }

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
