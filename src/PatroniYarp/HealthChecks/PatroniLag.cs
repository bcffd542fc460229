using System.Globalization;
using System.Numerics;
using System.Text.RegularExpressions;

namespace PatroniYarp.HealthChecks;

/// <summary>
/// Patroni's reading of a <c>?lag=</c> value (<c>parse_int(value, 'B')</c> in patroni/utils.py): an integer in C's
/// strtol forms (decimal, 0x hex, 0 octal) or a decimal fraction, optionally followed by a unit B, kB, MB, GB or TB
/// (case-sensitive, 1024-based); a value with a unit is rounded to whole units of the next smaller one, as Patroni
/// does. What Patroni cannot read is no limit at all, there as here.
/// </summary>
internal static partial class PatroniLag
{
    private static readonly (string Unit, double Bytes, double RoundTo)[] Units =
    [
        ("TB", Math.Pow(1024, 4), Math.Pow(1024, 3)),
        ("GB", Math.Pow(1024, 3), Math.Pow(1024, 2)),
        ("MB", Math.Pow(1024, 2), 1024),
        ("kB", 1024, 1),
        ("B", 1, 1),
    ];

    /// <summary>The limit in bytes, or null when the text is no number Patroni would accept (then: no limit).</summary>
    public static long? ParseBytes(string? text)
    {
        if (text is null)
        {
            return null;
        }
        var value = text.Trim();
        var (integer, unit) = StrToL(value);
        double? number = integer is null ? null : (double)integer.Value;
        if (integer is null && unit.StartsWith('.') || unit.Length > 0 && unit[0] is '.' or 'e' or 'E')
        {
            (number, unit) = StrToD(value);
            integer = null;
        }
        if (number is null)
        {
            return null;
        }

        unit = unit.Trim();
        if (unit.Length == 0)
        {
            return integer is { } exact ? Clamp(exact) : Round(number.Value);
        }
        foreach (var (name, bytes, roundTo) in Units)
        {
            if (name == unit)
            {
                return Round(Math.Round(number.Value * bytes / roundTo, MidpointRounding.ToEven) * roundTo);
            }
        }
        return null;
    }

    /// <summary>C's strtol with base 0 as Patroni emulates it: the integer at the start and the rest of the text.</summary>
    private static (BigInteger? Value, string Remainder) StrToL(string value)
    {
        if (Hex().Match(value) is { Success: true } hex)
        {
            var digits = hex.Value.TrimStart('+', '-')[2..];
            var parsed = BigInteger.Parse("0" + digits, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);
            return (hex.Value.StartsWith('-') ? -parsed : parsed, value[hex.Length..]);
        }
        if (Octal().Match(value) is { Success: true } octal)
        {
            BigInteger parsed = 0;
            foreach (var digit in octal.Value.TrimStart('+', '-'))
            {
                parsed = parsed * 8 + (digit - '0');
            }
            return (octal.Value.StartsWith('-') ? -parsed : parsed, value[octal.Length..]);
        }
        if (Decimal().Match(value) is { Success: true } dec)
        {
            return (BigInteger.Parse(dec.Value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture), value[dec.Length..]);
        }
        return (null, value);
    }

    private static (double? Value, string Remainder) StrToD(string value) =>
        Double().Match(value) is { Success: true } match
            ? (double.Parse(match.Value, NumberStyles.Float, CultureInfo.InvariantCulture), value[match.Length..])
            : (null, value);

    // Python's round() is round-half-to-even; an infinite value is Patroni's OverflowError, i.e. unreadable.
    private static long? Round(double value) =>
        double.IsFinite(value) ? Clamp(new BigInteger(Math.Round(value, MidpointRounding.ToEven))) : null;

    private static long Clamp(BigInteger value) => value > long.MaxValue ? long.MaxValue : value < long.MinValue ? long.MinValue : (long)value;

    [GeneratedRegex("^[-+]?0x[0-9a-fA-F]+")]
    private static partial Regex Hex();

    [GeneratedRegex("^[-+]?0[0-7]*")]
    private static partial Regex Octal();

    [GeneratedRegex("^[-+]?(0|[1-9][0-9]*)")]
    private static partial Regex Decimal();

    [GeneratedRegex(@"^[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?")]
    private static partial Regex Double();
}
