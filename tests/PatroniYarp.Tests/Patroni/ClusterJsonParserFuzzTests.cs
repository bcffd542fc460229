using PatroniYarp.Patroni;
using PatroniYarp.Tests.Fuzz;

namespace PatroniYarp.Tests.Patroni;

/// <summary>Property: whatever a Patroni API answers, the parser returns a result (members or a reason) and never throws or hangs.</summary>
public sealed class ClusterJsonParserFuzzTests
{
    private const int Cases = 100_000;

    [Fact]
    public async Task Parse_MutatedRealSamples_NeverThrowsOrHangs_AndRejectionsSayWhy()
    {
        var samples = Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "Patroni", "Samples"), "*.json")
            .Select(File.ReadAllBytes).ToList();
        var mutator = Mutator.ForJson(samples);

        await Mutator.RunAsync(Cases, TimeSpan.FromSeconds(2), seed => () =>
        {
            var result = ClusterJsonParser.Parse(mutator.Next(seed));
            if (result.IsSuccess)
            {
                Assert.All(result.Members, m => Assert.InRange(m.Port, 1, 65535));
                Assert.Equal(result.Members.Count, result.Members.Select(m => m.Name).Distinct(StringComparer.Ordinal).Count());
            }
            else
            {
                Assert.False(string.IsNullOrWhiteSpace(result.Error));
                Assert.Empty(result.Members);
            }
        });
    }
}
