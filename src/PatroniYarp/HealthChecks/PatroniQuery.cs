using Microsoft.AspNetCore.WebUtilities;

namespace PatroniYarp.HealthChecks;

/// <summary>
/// A query string read as Patroni reads it (Python's <c>parse_qs</c>): names are case-sensitive, pairs with an empty
/// value are dropped, and the first value of a name wins. ASP.NET's IQueryCollection folds name case, which would
/// merge <c>tag_Zone</c> into <c>tag_zone</c>.
/// </summary>
internal sealed class PatroniQuery
{
    public static readonly PatroniQuery Empty = new([]);

    private PatroniQuery(IReadOnlyList<KeyValuePair<string, string>> pairs) => Pairs = pairs;

    /// <summary>Name/value pairs in order, first value per name only.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Pairs { get; }

    public static PatroniQuery Parse(string? queryString)
    {
        var pairs = new List<KeyValuePair<string, string>>();
        foreach (var pair in new QueryStringEnumerable(queryString))
        {
            var name = pair.DecodeName().ToString();
            var value = pair.DecodeValue().ToString();
            if (value.Length > 0 && !pairs.Exists(p => p.Key == name))
            {
                pairs.Add(new(name, value));
            }
        }
        return new PatroniQuery(pairs);
    }

    public string? this[string name] => Pairs.FirstOrDefault(p => p.Key == name).Value;
}
