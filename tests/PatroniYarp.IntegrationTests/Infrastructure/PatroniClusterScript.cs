using System.Diagnostics;

namespace PatroniYarp.IntegrationTests.Infrastructure;

/// <summary>What <c>patroni-cluster.sh status</c> said: healthy means 1 running leader and 2 streaming replicas.</summary>
internal sealed record ClusterStatus(bool Healthy, string Output);

/// <summary>
/// Drives <c>scripts/patroni-cluster.sh</c>, the real 3-member Patroni cluster on loopback (etcd 127.0.0.1:12379,
/// scope <c>demo</c>, members pg0/pg1/pg2). Every call runs the script to its end with a timeout and returns its
/// stdout (the script keeps results on stdout and progress on stderr); a non-zero exit throws with both streams.
/// The script starts the cluster as the <c>postgres</c> user, so the tests must run as root (or as postgres).
/// </summary>
internal sealed class PatroniClusterScript
{
    public const string Scope = "demo";

    /// <summary>
    /// PATRONIYARP_CLUSTER_OFFSET=N selects the script's independent cluster N (every port up by 10 × N), so the tests
    /// can run beside a demo cluster; the script reads the same variable from the inherited environment.
    /// </summary>
    public static int PortShift { get; } =
        10 * (int.TryParse(Environment.GetEnvironmentVariable("PATRONIYARP_CLUSTER_OFFSET"), out var offset) ? offset : 0);

    public static int Pg0Port { get; } = 5441 + PortShift;
    public static int Pg1Port { get; } = 5442 + PortShift;
    public static int Pg2Port { get; } = 5443 + PortShift;

    public static string Pg0ApiUrl { get; } = $"http://127.0.0.1:{8011 + PortShift}";
    public static string Pg1ApiUrl { get; } = $"http://127.0.0.1:{8012 + PortShift}";
    public static string Pg2ApiUrl { get; } = $"http://127.0.0.1:{8013 + PortShift}";

    public static IReadOnlyList<string> Members { get; } = ["pg0", "pg1", "pg2"];

    /// <summary>The members' Patroni REST APIs, in member order (as patroni_proxy's <c>hosts</c> lists them).</summary>
    public static IReadOnlyList<string> ApiUrls { get; } = [Pg0ApiUrl, Pg1ApiUrl, Pg2ApiUrl];

    public static IReadOnlyDictionary<string, int> PostgresPorts { get; } =
        new Dictionary<string, int> { ["pg0"] = Pg0Port, ["pg1"] = Pg1Port, ["pg2"] = Pg2Port };

    public static IReadOnlyDictionary<string, string> ApiUrlsByMember { get; } =
        new Dictionary<string, string> { ["pg0"] = Pg0ApiUrl, ["pg1"] = Pg1ApiUrl, ["pg2"] = Pg2ApiUrl };

    // `up` may have to apt-get install the packages on a fresh machine; everything else waits at most 120 s inside
    // the script (start-member), 2 × 60 s (switchover) or 4 × 30 s (down).
    private static readonly TimeSpan UpTimeout = TimeSpan.FromMinutes(10);
    private static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(3);

    public PatroniClusterScript()
        : this(FindRepoRoot())
    {
    }

    /// <param name="repoRoot">The checkout whose script to run.</param>
    /// <param name="clusterDirectory">Another cluster directory than the script's default (PATRONIYARP_CLUSTER_DIR).</param>
    public PatroniClusterScript(string repoRoot, string? clusterDirectory = null)
    {
        RepoRoot = repoRoot;
        _clusterDirectory = clusterDirectory;
        ScriptPath = Path.Combine(repoRoot, "scripts", "patroni-cluster.sh");
        if (!File.Exists(ScriptPath))
        {
            throw new FileNotFoundException($"cluster script not found at {ScriptPath}", ScriptPath);
        }
    }

    private readonly string? _clusterDirectory;

    public string RepoRoot { get; }

    public string ScriptPath { get; }

    public static int PortOf(string member) =>
        PostgresPorts.TryGetValue(member, out var port) ? port : throw new ArgumentException($"unknown member '{member}'", nameof(member));

    public static string ApiUrlOf(string member) =>
        ApiUrlsByMember.TryGetValue(member, out var url) ? url : throw new ArgumentException($"unknown member '{member}'", nameof(member));

    /// <summary>Brings the cluster up (or confirms it is up and healthy, or repairs a partly stopped one).</summary>
    public Task<string> UpAsync(CancellationToken cancellationToken = default) =>
        RunAsync(UpTimeout, cancellationToken, "up");

    /// <summary>Stops everything the script started and removes the cluster directory.</summary>
    public Task<string> DownAsync(CancellationToken cancellationToken = default) =>
        RunAsync(DefaultTimeout, cancellationToken, "down");

    /// <summary><c>patronictl list</c> plus the script's verdict; does not throw when the cluster is unhealthy.</summary>
    public async Task<ClusterStatus> StatusAsync(CancellationToken cancellationToken = default)
    {
        var result = await ExecuteAsync(DefaultTimeout, cancellationToken, ["status"]);
        return new ClusterStatus(result.ExitCode == 0, result.StandardOutput);
    }

    /// <summary>The current leader's member name.</summary>
    public async Task<string> LeaderAsync(CancellationToken cancellationToken = default) =>
        LastLine(await RunAsync(DefaultTimeout, cancellationToken, "leader"));

    /// <summary>
    /// Planned switchover (to <paramref name="candidate"/> when given); returns the new leader once it runs and the
    /// old leader serves as a streaming replica again.
    /// </summary>
    public async Task<string> SwitchoverAsync(string? candidate = null, CancellationToken cancellationToken = default) =>
        LastLine(candidate is null
            ? await RunAsync(DefaultTimeout, cancellationToken, "switchover")
            : await RunAsync(DefaultTimeout, cancellationToken, "switchover", candidate));

    /// <summary>kill -9 of the leader's postmaster; returns the old leader at once (poll for the failover).</summary>
    public async Task<string> FailoverKillAsync(CancellationToken cancellationToken = default) =>
        LastLine(await RunAsync(DefaultTimeout, cancellationToken, "failover-kill"));

    /// <summary>Turns Patroni's synchronous_mode on or off; returns once a sync_standby exists (on) or none does (off).</summary>
    public Task<string> SyncAsync(bool on, CancellationToken cancellationToken = default) =>
        RunAsync(DefaultTimeout, cancellationToken, "sync", on ? "on" : "off");

    /// <summary>Sets Patroni tag <paramref name="key"/> (value parsed as YAML: "true", "5", "text") and waits for /cluster to show it.</summary>
    public Task<string> TagAsync(string member, string key, string value, CancellationToken cancellationToken = default) =>
        RunAsync(DefaultTimeout, cancellationToken, "tag", member, key, value);

    /// <summary>Removes Patroni tag <paramref name="key"/> and waits for /cluster to drop it.</summary>
    public Task<string> UntagAsync(string member, string key, CancellationToken cancellationToken = default) =>
        RunAsync(DefaultTimeout, cancellationToken, "untag", member, key);

    /// <summary>SIGTERM to the member's Patroni (which stops its PostgreSQL); returns once the process is gone.</summary>
    public Task<string> StopMemberAsync(string member, CancellationToken cancellationToken = default) =>
        RunAsync(DefaultTimeout, cancellationToken, "stop-member", member);

    /// <summary>Starts the member's Patroni again; returns once it serves (leader running or replica streaming).</summary>
    public Task<string> StartMemberAsync(string member, CancellationToken cancellationToken = default) =>
        RunAsync(DefaultTimeout, cancellationToken, "start-member", member);

    /// <summary>SIGSTOP to the replica's walreceiver: WAL written on the leader from now on shows up as lag.</summary>
    public Task<string> WalReceiverStopAsync(string member, CancellationToken cancellationToken = default) =>
        RunAsync(DefaultTimeout, cancellationToken, "walreceiver-stop", member);

    /// <summary>SIGCONT to the replica's walreceiver; the lag drains.</summary>
    public Task<string> WalReceiverContAsync(string member, CancellationToken cancellationToken = default) =>
        RunAsync(DefaultTimeout, cancellationToken, "walreceiver-cont", member);

    /// <summary>SIGTERM to etcd: Patroni loses its DCS, and the leader demotes itself after ttl (10 s here).</summary>
    public Task<string> EtcdStopAsync(CancellationToken cancellationToken = default) =>
        RunAsync(DefaultTimeout, cancellationToken, "etcd-stop");

    /// <summary>Starts etcd again; returns once it is healthy (the cluster then elects a leader on its own).</summary>
    public Task<string> EtcdStartAsync(CancellationToken cancellationToken = default) =>
        RunAsync(DefaultTimeout, cancellationToken, "etcd-start");

    /// <summary>Runs one SQL command with psql against the member directly (unaligned, tuples only).</summary>
    public Task<string> PsqlAsync(string member, string sql, CancellationToken cancellationToken = default) =>
        RunAsync(DefaultTimeout, cancellationToken, "psql", member, "-v", "ON_ERROR_STOP=1", "-Atc", sql);

    /// <summary>Runs the script with <paramref name="args"/>; returns stdout, throws on a non-zero exit or timeout.</summary>
    public async Task<string> RunAsync(TimeSpan timeout, CancellationToken cancellationToken, params string[] args)
    {
        var result = await ExecuteAsync(timeout, cancellationToken, args);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"patroni-cluster.sh {string.Join(' ', args)} exited with {result.ExitCode}\n" +
                $"--- stdout ---\n{result.StandardOutput}\n--- stderr ---\n{result.StandardError}");
        }
        return result.StandardOutput;
    }

    private sealed record ScriptResult(int ExitCode, string StandardOutput, string StandardError);

    private async Task<ScriptResult> ExecuteAsync(TimeSpan timeout, CancellationToken cancellationToken, IReadOnlyList<string> args)
    {
        var startInfo = new ProcessStartInfo("bash")
        {
            WorkingDirectory = RepoRoot,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        if (_clusterDirectory is not null)
        {
            startInfo.Environment["PATRONIYARP_CLUSTER_DIR"] = _clusterDirectory;
        }
        startInfo.ArgumentList.Add(ScriptPath);
        foreach (var arg in args)
        {
            startInfo.ArgumentList.Add(arg);
        }

        using var process = Process.Start(startInfo) ?? throw new InvalidOperationException("could not start bash");
        // Nothing reads stdin (psql would wait for it otherwise).
        process.StandardInput.Close();
        // Read both streams concurrently so that neither pipe fills up and blocks the script.
        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            // The script's own children (sleep, python, patronictl); the cluster's daemons are not among them
            // (they run in their own sessions, reparented to init) and stay up for `down`.
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // It exited just now.
            }
            await process.WaitForExitAsync(CancellationToken.None);
            cancellationToken.ThrowIfCancellationRequested();
            throw new TimeoutException(
                $"patroni-cluster.sh {string.Join(' ', args)} timed out after {timeout.TotalSeconds:0} s\n" +
                $"--- stdout ---\n{await stdout}\n--- stderr ---\n{await stderr}");
        }

        return new ScriptResult(process.ExitCode, await stdout, await stderr);
    }

    private static string LastLine(string output) =>
        output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault()
        ?? throw new InvalidOperationException("patroni-cluster.sh printed nothing");

    public static string FindRepoRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "PatroniYarp.sln")))
            {
                return directory.FullName;
            }
        }
        throw new InvalidOperationException($"no PatroniYarp.sln in {AppContext.BaseDirectory} or any parent directory");
    }
}
