using System.Diagnostics;
using System.Text;

namespace PatroniYarp.Tests.Fuzz;

/// <summary>
/// Random mutations of real samples for property-based fuzzing: bit flips, truncations, insertions of syntax
/// fragments, deletions, duplicated ranges, type swaps of values and deep nesting. Every case is drawn from its own
/// seed, so a failure names the one seed that replays it.
/// </summary>
internal sealed class Mutator(IReadOnlyList<byte[]> samples, IReadOnlyList<string> fragments, IReadOnlyList<string> values, string nestOpen, string nestClose)
{
    public static Mutator ForJson(IReadOnlyList<byte[]> samples) => new(samples,
        ["{", "}", "[", "]", "\"", ",", ":", "null", "-1", "1e999", "\"\\uD800\"", "\\", "\u0000", "\"members\"", "\"port\":", "\"name\":\"pg0\""],
        ["\"x\"", "-1", "0", "65536", "99999999999999999999999", "1.5", "true", "false", "null", "[]", "{}", "[1,\"a\",{}]", "\"\\u0000\"", "\"\""],
        "[", "]");

    public static Mutator ForYaml(IReadOnlyList<byte[]> samples) => new(samples,
        [": ", "- ", "[", "]", "{", "}", "&a ", "*a", "!!binary ", "? ", "|\n", ">\n", "\t", "%YAML 1.1\n", "---\n", "...\n", "\"", "'", "#", "\n  ", "<<: *a\n", "\u0000", "\uFEFF"],
        ["[a, b]", "{x: 1}", "-1", "~", "abc", "\"\\u0000\"", "*a", "1e999", "0x1F", ".nan", "true", "[]", "{}", "\"\"", "!!str 5", "&a {}"],
        "[", "]");

    /// <summary>A mutated sample for <paramref name="caseSeed"/>: one to three mutations of one sample.</summary>
    public byte[] Next(int caseSeed)
    {
        var random = new Random(caseSeed);
        var data = new List<byte>(samples[random.Next(samples.Count)]);
        var mutations = random.Next(1, 4);
        for (var i = 0; i < mutations; i++)
        {
            Mutate(random, data);
        }
        return [.. data];
    }

    private void Mutate(Random random, List<byte> data)
    {
        var at = random.Next(data.Count + 1);
        switch (random.Next(8))
        {
            case 0 when data.Count > 0:
                for (var flips = random.Next(1, 9); flips > 0; flips--)
                {
                    var i = random.Next(data.Count);
                    data[i] ^= (byte)(1 << random.Next(8));
                }
                break;
            case 1:
                data.RemoveRange(at, data.Count - at);
                break;
            case 2:
                data.InsertRange(at, Encoding.UTF8.GetBytes(fragments[random.Next(fragments.Count)]));
                break;
            case 3:
                data.RemoveRange(at, random.Next(data.Count - at + 1));
                break;
            case 4:
                var length = random.Next(data.Count - at + 1);
                data.InsertRange(random.Next(data.Count + 1), data.GetRange(at, length));
                break;
            case 5:
                SwapValue(random, data);
                break;
            case 6:
                var depth = random.Next(1, 5000);
                data.InsertRange(at, Encoding.UTF8.GetBytes(Repeat(nestOpen, depth) + Repeat(nestClose, random.Next(depth + 1))));
                break;
            default:
                var bytes = new byte[random.Next(1, 16)];
                random.NextBytes(bytes);
                data.InsertRange(at, bytes);
                break;
        }
    }

    /// <summary>Replaces the value after a random ':' (up to the next separator or line end) with one of another type.</summary>
    private void SwapValue(Random random, List<byte> data)
    {
        var colons = Enumerable.Range(0, data.Count).Where(i => data[i] == (byte)':').ToList();
        if (colons.Count == 0)
        {
            return;
        }
        var start = colons[random.Next(colons.Count)] + 1;
        var end = start;
        while (end < data.Count && data[end] is not ((byte)',' or (byte)'}' or (byte)']' or (byte)'\n'))
        {
            end++;
        }
        data.RemoveRange(start, end - start);
        data.InsertRange(start, Encoding.UTF8.GetBytes(" " + values[random.Next(values.Count)]));
    }

    private static string Repeat(string text, int count) => new StringBuilder(text.Length * count).Insert(0, text, count).ToString();

    /// <summary>
    /// Runs <paramref name="cases"/> cases of <paramref name="check"/> (which must not throw) on every core and fails,
    /// naming the seed to replay, when a case throws, takes longer than <paramref name="perCase"/>, or never returns.
    /// PATRONIYARP_FUZZ_SEED fixes the run's seed; otherwise every run explores new cases.
    /// </summary>
    public static async Task RunAsync(int cases, TimeSpan perCase, Func<int, Action> check)
    {
        var runSeed = int.TryParse(Environment.GetEnvironmentVariable("PATRONIYARP_FUZZ_SEED"), out var fixedSeed) ? fixedSeed : Random.Shared.Next();
        var current = new int[Environment.ProcessorCount];
        string? failure = null;
        // One worker per core, each taking every n-th case: a case's seed does not depend on which worker ran it.
        var workers = Enumerable.Range(0, Environment.ProcessorCount).Select(first => Task.Factory.StartNew(() =>
        {
            var watch = new Stopwatch();
            for (var i = first; i < cases && Volatile.Read(ref failure) is null; i += Environment.ProcessorCount)
            {
                var caseSeed = HashCode.Combine(runSeed, i);
                Volatile.Write(ref current[first], caseSeed);
                var run = check(caseSeed);
                watch.Restart();
                try
                {
                    run();
                }
                catch (Exception ex)
                {
                    Interlocked.CompareExchange(ref failure, $"case seed {caseSeed} (run seed {runSeed}, case {i}) threw {ex}", null);
                }
                if (watch.Elapsed > perCase)
                {
                    Interlocked.CompareExchange(ref failure, $"case seed {caseSeed} (run seed {runSeed}, case {i}) took {watch.Elapsed.TotalMilliseconds:0} ms", null);
                }
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray();
        var worker = Task.WhenAll(workers);

        // Generous: the run takes seconds; only a case that never returns gets here.
        var finished = await Task.WhenAny(worker, Task.Delay(TimeSpan.FromMinutes(2)));
        Assert.True(finished == worker, $"a case never returned: one of case seeds {string.Join(", ", current)} (run seed {runSeed})");
        await worker;
        Assert.True(failure is null, $"{failure}\nreplay the run with PATRONIYARP_FUZZ_SEED={runSeed}");
    }
}
