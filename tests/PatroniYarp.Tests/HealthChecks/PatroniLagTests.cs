using PatroniYarp.HealthChecks;

namespace PatroniYarp.Tests.HealthChecks;

/// <summary>Expected values are Patroni's own: patroni.utils.parse_int(value, 'B').</summary>
public sealed class PatroniLagTests
{
    [Theory]
    [InlineData("16", 16L)]
    [InlineData(" 16 ", 16L)]
    [InlineData("+16", 16L)]
    [InlineData("0", 0L)]
    [InlineData("-1", -1L)]
    [InlineData("100B", 100L)]
    [InlineData("1kB", 1024L)]
    [InlineData("16MB", 16L * 1024 * 1024)]
    [InlineData("16 MB", 16L * 1024 * 1024)]
    [InlineData("1GB", 1024L * 1024 * 1024)]
    [InlineData("2TB", 2L * 1024 * 1024 * 1024 * 1024)]
    [InlineData("1.5MB", 1572864L)]
    [InlineData("0.3MB", 314368L)] // 314572.8 B rounded to whole kB, as Patroni does
    [InlineData("1.5kB", 1536L)]
    [InlineData("2.5", 2L)] // Python rounds half to even
    [InlineData("3.5", 4L)]
    [InlineData("1e3", 1000L)]
    [InlineData("0x10", 16L)]
    [InlineData("010", 8L)] // C's strtol: a leading 0 is octal
    [InlineData("99999999999999999999999", long.MaxValue)]
    public void ParseBytes_PatroniForms_BytesAsPatroniComputes(string text, long expected)
    {
        Assert.Equal(expected, PatroniLag.ParseBytes(text));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("abc")]
    [InlineData("16mb")] // units are case-sensitive
    [InlineData("16KB")]
    [InlineData("16PB")]
    [InlineData("08")] // octal 0 followed by "8", which is no unit
    [InlineData("1e999")]
    public void ParseBytes_Unreadable_NullMeaningNoLimit(string? text)
    {
        Assert.Null(PatroniLag.ParseBytes(text));
    }
}
