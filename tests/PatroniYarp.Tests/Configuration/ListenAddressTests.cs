using PatroniYarp.Configuration;

namespace PatroniYarp.Tests.Configuration;

public sealed class ListenAddressTests
{
    [Theory]
    [InlineData("0.0.0.0:6432", "0.0.0.0", 6432)]
    [InlineData("127.0.0.1:1", "127.0.0.1", 1)]
    [InlineData("[::1]:6432", "::1", 6432)]
    [InlineData("[::]:65535", "::", 65535)]
    [InlineData("*:6432", "*", 6432)]
    [InlineData("localhost:6432", "localhost", 6432)]
    [InlineData("DB-Proxy.example.com:6432", "db-proxy.example.com", 6432)]
    [InlineData(" 10.0.0.1:6432 ", "10.0.0.1", 6432)]
    public void TryParse_AcceptedForms_HostAndPort(string text, string host, int port)
    {
        Assert.True(ListenAddress.TryParse(text, out var address));
        Assert.Equal(new ListenAddress(host, port), address);
    }

    [Theory]
    [InlineData("0.0.0.0:6432", "http://0.0.0.0:6432")]
    [InlineData("127.0.0.1:6432", "http://127.0.0.1:6432")]
    [InlineData("[::1]:6432", "http://[::1]:6432")]
    [InlineData("[::]:6432", "http://[::]:6432")]
    [InlineData("*:6432", "http://*:6432")]
    [InlineData("localhost:6432", "http://localhost:6432")]
    public void ToKestrelUrl_ListenForms_HttpUrl(string text, string expected)
    {
        Assert.True(ListenAddress.TryParse(text, out var address));
        Assert.Equal(expected, address.ToKestrelUrl());
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("6432")]
    [InlineData(":6432")]
    [InlineData("localhost")]
    [InlineData("localhost:0")]
    [InlineData("localhost:65536")]
    [InlineData("localhost:-1")]
    [InlineData("localhost:64x")]
    [InlineData("::1:6432")]
    [InlineData("[::1]6432")]
    [InlineData("[127.0.0.1]:6432")]
    [InlineData("http://localhost:6432")]
    [InlineData("bad host:6432")]
    public void TryParse_Unparsable_False(string? text)
    {
        Assert.False(ListenAddress.TryParse(text, out _));
    }

    [Theory]
    [InlineData("0.0.0.0:6432", "127.0.0.1:6432", true)]
    [InlineData("*:6432", "[::1]:6432", true)]
    [InlineData("[::]:6432", "10.0.0.1:6432", true)]
    [InlineData("localhost:6432", "127.0.0.1:6432", true)]
    [InlineData("[::1]:6432", "localhost:6432", true)]
    [InlineData("LOCALHOST:6432", "localhost:6432", true)]
    [InlineData("[::1]:6432", "[0:0::1]:6432", true)]
    [InlineData("127.0.0.1:6432", "127.0.0.2:6432", false)]
    [InlineData("0.0.0.0:6432", "0.0.0.0:6433", false)]
    [InlineData("localhost:6432", "10.0.0.1:6432", false)]
    public void ClashesWith_SamePortOverlappingHosts_True(string a, string b, bool clash)
    {
        Assert.True(ListenAddress.TryParse(a, out var x));
        Assert.True(ListenAddress.TryParse(b, out var y));

        Assert.Equal(clash, x.ClashesWith(y));
        Assert.Equal(clash, y.ClashesWith(x));
    }

    [Fact]
    public void ToString_IPv6_Bracketed()
    {
        Assert.True(ListenAddress.TryParse("[::1]:6432", out var address));
        Assert.Equal("[::1]:6432", address.ToString());
    }
}
