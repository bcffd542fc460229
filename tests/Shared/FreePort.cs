using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace PatroniYarp.Testing;

/// <summary>Shared by the unit and the real-cluster tests (linked into both projects).</summary>
internal static class FreePort
{
    // Linux may hand the same ephemeral port to two binds in a row once the first is closed, and a test that asks for
    // an admin port and a listen port then gets a config that clashes with itself. Never hand a port out twice.
    private static readonly ConcurrentDictionary<(IPAddress, int), byte> HandedOut = new();

    /// <summary>A port on <paramref name="address"/> (loopback by default) that was free a moment ago and that no other
    /// caller in this test run has been given.</summary>
    public static int Next(IPAddress? address = null)
    {
        address ??= IPAddress.Loopback;
        while (true)
        {
            using var listener = new TcpListener(address, 0);
            listener.Start();
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            if (HandedOut.TryAdd((address, port), 0))
            {
                return port;
            }
        }
    }
}
