using PatroniYarp.Tcp;
using PatroniYarp.Tests.Tcp;

namespace PatroniYarp.Tests.Diagnostics;

/// <summary>The registry totals the session and byte metrics read: they never go down when a session ends.</summary>
public class SessionTrafficTests
{
    private readonly SessionRegistry _registry = new(TimeProvider.System);
    private readonly TcpPortEndpoint _replicas = new("main", "replicas", "http://127.0.0.1:6433");

    [Fact]
    public void TrafficTotals_SessionEnds_OpenDropsWhileOpenedAndBytesStay()
    {
        var ended = TcpTestSupport.NewSession(_registry, _replicas, "pg2");
        var open = TcpTestSupport.NewSession(_registry, _replicas, "pg2");
        ended.AddBytesIn(10);
        ended.AddBytesOut(100);
        open.AddBytesIn(1);

        var before = _registry.TrafficTotals()[new SessionGroup("main", "replicas", "pg2")];
        _registry.Unregister(ended);
        var after = _registry.TrafficTotals()[new SessionGroup("main", "replicas", "pg2")];

        Assert.Equal(new SessionTraffic(Open: 2, Opened: 2, BytesIn: 11, BytesOut: 100), before);
        Assert.Equal(new SessionTraffic(Open: 1, Opened: 2, BytesIn: 11, BytesOut: 100), after);
    }
}
