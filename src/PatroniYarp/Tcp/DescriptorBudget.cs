using System.Runtime.InteropServices;

namespace PatroniYarp.Tcp;

/// <summary>
/// How many sessions the open-files limit leaves room for. A session takes two descriptors (client and member), and
/// .NET opens files as it runs (assemblies, <c>/proc/meminfo</c> for the GC): a process that runs out of descriptors
/// dies ("Out of memory.") instead of failing one connect, and every session with it. So the soft limit is raised to
/// the hard one at start (as Go's runtime does; a container's soft limit is often 1024), and the TCP ports stop
/// accepting while <see cref="MaxSessions"/> are open: new connections wait in the listen backlog, and a reserve is
/// left for the runtime, the Patroni polls and the HTTP side. The HTTP listeners (admin API, health checks) may take half
/// of that reserve (<see cref="MaxHttpConnections"/>) and likewise stop accepting when it is used up.
/// </summary>
internal sealed partial class DescriptorBudget
{
    private const int RlimitNoFile = 7;
    private const int MinimumReserve = 64;

    private long _taken;
    private long _httpTaken;

    public DescriptorBudget(ILogger<DescriptorBudget> logger)
        : this(RaiseLimit(out var raisedFrom), Directory.GetFileSystemEntries("/proc/self/fd").Length)
    {
        if (raisedFrom is { } from)
        {
            Log.BudgetRaised(logger, Limit, from, MaxSessions, MaxHttpConnections);
        }
        else
        {
            Log.Budget(logger, Limit, MaxSessions, MaxHttpConnections);
        }
    }

    /// <param name="limit">The open-files limit.</param>
    /// <param name="open">Descriptors open now.</param>
    internal DescriptorBudget(long limit, int open)
    {
        Limit = limit;
        var reserve = Math.Max(MinimumReserve, limit / 16);
        MaxSessions = Math.Max(1, (limit - open - reserve) / 2);
        MaxHttpConnections = Math.Max(1, reserve / 2);
    }

    /// <summary>The process's open-files limit (soft).</summary>
    public long Limit { get; }

    /// <summary>Sessions (client connections, each with its member's) that fit under <see cref="Limit"/>.</summary>
    public long MaxSessions { get; }

    /// <summary>HTTP connections (admin API, health checks) that fit in their half of the reserve.</summary>
    public long MaxHttpConnections { get; }

    /// <summary>Client connections accepted and not yet ended.</summary>
    public long Taken => Volatile.Read(ref _taken);

    /// <summary>Takes room for one more session; false when <see cref="MaxSessions"/> are open.</summary>
    public bool TryTake() => TryTake(ref _taken, MaxSessions);

    /// <summary>Gives a session's room back.</summary>
    public void Return() => Interlocked.Decrement(ref _taken);

    /// <summary>HTTP connections accepted and not yet ended.</summary>
    public long HttpTaken => Volatile.Read(ref _httpTaken);

    /// <summary>Takes room for one more HTTP connection; false when <see cref="MaxHttpConnections"/> are open.</summary>
    public bool TryTakeHttp() => TryTake(ref _httpTaken, MaxHttpConnections);

    /// <summary>Gives an HTTP connection's room back.</summary>
    public void ReturnHttp() => Interlocked.Decrement(ref _httpTaken);

    private static bool TryTake(ref long taken, long most)
    {
        if (Interlocked.Increment(ref taken) <= most)
        {
            return true;
        }
        Interlocked.Decrement(ref taken);
        return false;
    }

    /// <summary>Raises the soft open-files limit to the hard one; the limit now, and what it was (null when unchanged).</summary>
    private static long RaiseLimit(out long? raisedFrom)
    {
        raisedFrom = null;
        var limits = new long[2];
        if (Prlimit(0, RlimitNoFile, null, limits) != 0)
        {
            // Unknown: assume the common default and budget for it.
            return 1024;
        }
        // An unlimited hard limit (RLIM_INFINITY, -1 as a long) is capped by the kernel's nr_open.
        var target = limits[1] < 0 ? ReadNrOpen() : limits[1];
        if (limits[0] >= 0 && limits[0] < target && Prlimit(0, RlimitNoFile, [target, limits[1]], null) == 0)
        {
            raisedFrom = limits[0];
            return target;
        }
        return limits[0] < 0 ? target : limits[0];
    }

    private static long ReadNrOpen() =>
        long.TryParse(File.ReadAllText("/proc/sys/fs/nr_open").Trim(), out var nrOpen) ? nrOpen : 1_048_576;

    [LibraryImport("libc", EntryPoint = "prlimit", SetLastError = true)]
    private static partial int Prlimit(int pid, int resource, long[]? newLimit, long[]? oldLimit);

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information,
            "Open-files limit {Limit}: the TCP ports take up to {MaxSessions} sessions at once, the HTTP API up to {MaxHttpConnections} connections; more wait in the listen backlog.")]
        public static partial void Budget(ILogger logger, long limit, long maxSessions, long maxHttpConnections);

        [LoggerMessage(2, LogLevel.Information,
            "Open-files limit raised from {RaisedFrom} to {Limit} (the hard limit): the TCP ports take up to {MaxSessions} sessions at once, the HTTP API up to {MaxHttpConnections} connections; more wait in the listen backlog.")]
        public static partial void BudgetRaised(ILogger logger, long limit, long raisedFrom, long maxSessions, long maxHttpConnections);
    }
}
