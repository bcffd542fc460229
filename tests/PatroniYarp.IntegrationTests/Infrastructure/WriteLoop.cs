using System.Collections.Concurrent;
using Npgsql;

namespace PatroniYarp.IntegrationTests.Infrastructure;

/// <summary>One write that PostgreSQL acknowledged: its id, the server that took it and whether that server was a replica.</summary>
internal sealed record AcknowledgedWrite(long Id, int ServerPort, bool InRecovery);

/// <summary>
/// Writes one row at a time through a proxy port, each on a new session (so every write is routed afresh), until
/// stopped. Failures (refused, closed, read-only) are counted and retried; acknowledged writes are recorded, so a test
/// can check that each one is on the final leader and none was taken by a replica.
/// </summary>
internal sealed class WriteLoop : IAsyncDisposable
{
    private readonly int _port;
    private readonly string _table;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentQueue<AcknowledgedWrite> _acknowledged = new();
    private readonly Task _loop;
    private long _nextId;
    private int _attempts;
    private int _failures;

    private WriteLoop(int port, string table)
    {
        _port = port;
        _table = table;
        _loop = Task.Run(RunAsync);
    }

    public IReadOnlyCollection<AcknowledgedWrite> Acknowledged => _acknowledged;

    public int Attempts => Volatile.Read(ref _attempts);

    public int Failures => Volatile.Read(ref _failures);

    /// <summary>(Re)creates <paramref name="table"/> on the leader, directly, and starts writing through <paramref name="port"/>.</summary>
    public static async Task<WriteLoop> StartAsync(int port, int leaderPort, string table)
    {
        await using var leader = await Pg.OpenAsync(leaderPort);
        await using var command = new NpgsqlCommand($"drop table if exists {table}; create table {table} (id bigint primary key, server_port int not null)", leader);
        await command.ExecuteNonQueryAsync();
        return new WriteLoop(port, table);
    }

    /// <summary>Waits until <paramref name="count"/> more writes have been acknowledged than now.</summary>
    public Task WaitForMoreAsync(int count, TimeSpan timeout)
    {
        var target = _acknowledged.Count + count;
        return Eventually.UntilAsync(() => Task.FromResult(_acknowledged.Count >= target), timeout, $"{count} more acknowledged writes through port {_port}");
    }

    /// <summary>Waits until <paramref name="count"/> more attempts have been made than now (acknowledged or not).</summary>
    public Task WaitForMoreAttemptsAsync(int count, TimeSpan timeout)
    {
        var target = Attempts + count;
        return Eventually.UntilAsync(() => Task.FromResult(Attempts >= target), timeout, $"{count} more write attempts through port {_port}");
    }

    /// <summary>
    /// The acknowledged writes missing from the table on <paramref name="serverPort"/> (on the final leader none may be),
    /// with the server that took each.
    /// </summary>
    public async Task<IReadOnlyList<AcknowledgedWrite>> MissingOnAsync(int serverPort)
    {
        var ids = await IdsOnAsync(serverPort);
        return [.. _acknowledged.Where(w => !ids.Contains(w.Id))];
    }

    private async Task<HashSet<long>> IdsOnAsync(int serverPort)
    {
        await using var connection = await Pg.OpenAsync(serverPort);
        await using var command = new NpgsqlCommand($"select id from {_table}", connection);
        await using var reader = await command.ExecuteReaderAsync();
        var ids = new HashSet<long>();
        while (await reader.ReadAsync())
        {
            ids.Add(reader.GetInt64(0));
        }
        return ids;
    }

    public async Task StopAsync()
    {
        _stop.Cancel();
        await _loop;
    }

    public async ValueTask DisposeAsync() => await StopAsync();

    private async Task RunAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            var id = Interlocked.Increment(ref _nextId);
            Interlocked.Increment(ref _attempts);
            try
            {
                await using var connection = new NpgsqlConnection(Pg.ConnectionString(_port, "Timeout=5;Command Timeout=5"));
                await connection.OpenAsync(_stop.Token);
                await using var command = new NpgsqlCommand(
                    $"insert into {_table} values ({id}, inet_server_port()) returning server_port, pg_is_in_recovery()", connection);
                await using var reader = await command.ExecuteReaderAsync(_stop.Token);
                await reader.ReadAsync(_stop.Token);
                _acknowledged.Enqueue(new AcknowledgedWrite(id, reader.GetInt32(0), reader.GetBoolean(1)));
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is NpgsqlException or IOException or InvalidOperationException or TimeoutException or OperationCanceledException)
            {
                Interlocked.Increment(ref _failures);
                try
                {
                    await Task.Delay(100, _stop.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }
}
