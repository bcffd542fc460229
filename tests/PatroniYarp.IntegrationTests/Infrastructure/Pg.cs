using Npgsql;

namespace PatroniYarp.IntegrationTests.Infrastructure;

/// <summary>Where a PostgreSQL session landed, as a user sees it.</summary>
internal sealed record Landing(int ServerPort, bool InRecovery);

/// <summary>Real PostgreSQL sessions through the proxy (Npgsql, no pooling: one session is one TCP connection).</summary>
internal static class Pg
{
    public static string ConnectionString(int port, string extra = "") =>
        $"Host=127.0.0.1;Port={port};Username=postgres;Database=postgres;Pooling=false;Timeout=10;Command Timeout=10;{extra}";

    public static async Task<NpgsqlConnection> OpenAsync(int port, string extra = "")
    {
        var connection = new NpgsqlConnection(ConnectionString(port, extra));
        await connection.OpenAsync();
        return connection;
    }

    /// <summary><c>select inet_server_port(), pg_is_in_recovery()</c> on an open session.</summary>
    public static async Task<Landing> WhereAsync(NpgsqlConnection connection)
    {
        await using var command = new NpgsqlCommand("select inet_server_port(), pg_is_in_recovery()", connection);
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return new Landing(reader.GetInt32(0), reader.GetBoolean(1));
    }

    /// <summary>Opens a new session on <paramref name="port"/>, asks where it landed, closes it.</summary>
    public static async Task<Landing> WhereAsync(int port)
    {
        await using var connection = await OpenAsync(port);
        return await WhereAsync(connection);
    }

    /// <summary>True when the session still answers a query.</summary>
    public static async Task<bool> AliveAsync(NpgsqlConnection connection)
    {
        try
        {
            await using var command = new NpgsqlCommand("select 1", connection);
            return (int)(await command.ExecuteScalarAsync())! == 1;
        }
        catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException or IOException)
        {
            return false;
        }
    }
}
