using PatroniYarp.HealthChecks;

namespace PatroniYarp.Tests.HealthChecks;

public sealed class PatroniQueryTests
{
    [Fact]
    public void Parse_NamesAreCaseSensitive()
    {
        var query = PatroniQuery.Parse("?tag_Zone=a&tag_zone=b");

        Assert.Equal("a", query["tag_Zone"]);
        Assert.Equal("b", query["tag_zone"]);
    }

    [Fact]
    public void Parse_FirstValueWins()
    {
        Assert.Equal("1MB", PatroniQuery.Parse("?lag=1MB&lag=2MB")["lag"]);
    }

    [Fact]
    public void Parse_BlankValuesAreDropped_AsPythonParseQs()
    {
        var query = PatroniQuery.Parse("?tag_dc=&lag&x=1");

        Assert.Null(query["tag_dc"]);
        Assert.Null(query["lag"]);
        Assert.Equal(["x"], query.Pairs.Select(p => p.Key));
    }

    [Fact]
    public void Parse_DecodesPercentAndPlus()
    {
        Assert.Equal("a b/c", PatroniQuery.Parse("?tag_rack=a+b%2Fc")["tag_rack"]);
    }
}
