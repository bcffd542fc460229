using System.Globalization;
using System.Text.RegularExpressions;
using PatroniYarp.IntegrationTests.Infrastructure;

namespace PatroniYarp.IntegrationTests.Diagnostics;

/// <summary>One sample of a Prometheus text exposition: metric name, labels, value.</summary>
internal sealed record PrometheusSample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);

/// <summary>Just enough of the Prometheus text format to read what /metrics exposes.</summary>
internal static partial class PrometheusText
{
    public static IReadOnlyList<PrometheusSample> Parse(string text)
    {
        var samples = new List<PrometheusSample>();
        foreach (var line in text.Split('\n'))
        {
            var match = SampleLine().Match(line);
            if (!match.Success)
            {
                continue;
            }
            var labels = LabelPair().Matches(match.Groups["labels"].Value)
                .ToDictionary(m => m.Groups["key"].Value, m => m.Groups["value"].Value);
            samples.Add(new PrometheusSample(match.Groups["name"].Value, labels,
                double.Parse(match.Groups["value"].Value, CultureInfo.InvariantCulture)));
        }
        return samples;
    }

    /// <summary>Sum of the samples named <paramref name="name"/> whose labels include <paramref name="labels"/>.</summary>
    public static double Sum(this IReadOnlyList<PrometheusSample> samples, string name, params (string Key, string Value)[] labels) =>
        samples.Where(s => s.Name == name && labels.All(l => s.Labels.GetValueOrDefault(l.Key) == l.Value)).Sum(s => s.Value);

    public static bool Has(this IReadOnlyList<PrometheusSample> samples, string name) => samples.Any(s => s.Name == name);

    /// <summary>
    /// Scrapes <paramref name="proxy"/>'s /metrics until <paramref name="condition"/> holds; on timeout the error shows
    /// the last scrape's PatroniYarp samples and the proxy's log.
    /// </summary>
    public static async Task<IReadOnlyList<PrometheusSample>> ScrapeUntilAsync(PatroniYarpProcess proxy,
        Func<IReadOnlyList<PrometheusSample>, bool> condition, TimeSpan timeout)
    {
        var text = "";
        try
        {
            return await Eventually.ValueAsync(async () =>
            {
                text = await proxy.Admin.GetStringAsync("/metrics");
                var samples = Parse(text);
                return condition(samples) ? samples : null;
            }, timeout, "/metrics to show the expected values");
        }
        catch (TimeoutException ex)
        {
            var ours = text.Split('\n').Where(line => line.StartsWith("patroniyarp_", StringComparison.Ordinal) && !line.Contains("_bucket"));
            throw new TimeoutException($"{ex.Message}\n{string.Join('\n', ours)}\n--- log ---\n{proxy.OutputText}", ex);
        }
    }

    [GeneratedRegex("""^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>.*)\})?\s+(?<value>\S+)(\s+\d+)?$""")]
    private static partial Regex SampleLine();

    [GeneratedRegex(@"(?<key>[a-zA-Z_][a-zA-Z0-9_]*)=""(?<value>(?:[^""\\]|\\.)*)""")]
    private static partial Regex LabelPair();
}
