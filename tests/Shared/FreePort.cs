using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace PatroniYarp.Testing;

/// <summary>Shared by the unit and the real-cluster tests (linked into both projects).</summary>
internal static class FreePort
{
    // Ports for tests to listen on come from below the kernel's ephemeral range. A port taken from the ephemeral range
    // (bind to port 0, read it, close) can be handed by the kernel to the next bind to port 0, or become an outgoing
    // connection's source port, before the test binds it: both happened in CI ("address already in use", and an admin
    // port equal to a listen port). Below the range only explicit binds can take a port.
    private const int First = 20_000;
    private const int End = 32_000;

    private static readonly int Count = Math.Max(1_000, Math.Min(End, EphemeralRangeStart()) - First);
    private static readonly ConcurrentDictionary<(IPAddress, int), byte> HandedOut = new();

    // A random start: the unit and the real-cluster test processes, and other users of the machine, rarely meet.
    private static int _next = Random.Shared.Next(Count);

    /// <summary>
    /// A port on <paramref name="address"/> (loopback by default) that is free now, outside the ephemeral range, and
    /// that no other caller in this test run has been given.
    /// </summary>
    public static int Next(IPAddress? address = null)
    {
        address ??= IPAddress.Loopback;
        for (var tried = 0; tried < Count; tried++)
        {
            var port = First + (int)((uint)Interlocked.Increment(ref _next) % (uint)Count);
            if (HandedOut.TryAdd((address, port), 0) && IsFree(address, port))
            {
                return port;
            }
        }
        throw new InvalidOperationException($"No free port left in {First}..{First + Count - 1} on {address}.");
    }

    private static bool IsFree(IPAddress address, int port)
    {
        try
        {
            using var listener = new TcpListener(address, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>The first port of net.ipv4.ip_local_port_range (Linux's default 32768 when it cannot be read).</summary>
    private static int EphemeralRangeStart()
    {
        try
        {
            var range = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            return int.Parse(range[0]);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return 32_768;
        }
    }
}
