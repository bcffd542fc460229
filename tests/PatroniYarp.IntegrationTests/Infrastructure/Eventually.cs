namespace PatroniYarp.IntegrationTests.Infrastructure;

/// <summary>Poll-until-with-timeout: the only way these tests wait for the cluster or the proxy to change.</summary>
internal static class Eventually
{
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(100);

    /// <summary>Polls <paramref name="condition"/> until it holds; fails with <paramref name="what"/> after the timeout.</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        await ValueAsync(async () => await condition() ? true : (bool?)null, timeout, what);
    }

    /// <summary>Polls until <paramref name="probe"/> returns a non-null value, which is returned; exceptions count as "not yet".</summary>
    public static async Task<T> ValueAsync<T>(Func<Task<T?>> probe, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        Exception? last = null;
        while (true)
        {
            try
            {
                var value = await probe();
                if (value is not null)
                {
                    return value;
                }
            }
            catch (Exception ex)
            {
                last = ex;
            }
            if (DateTime.UtcNow >= deadline)
            {
                throw new TimeoutException($"Timed out after {timeout.TotalSeconds:0.#} s waiting for {what}." +
                    (last is null ? "" : $" Last error: {last.GetType().Name}: {last.Message}"), last);
            }
            await Task.Delay(Interval);
        }
    }
}
