using PatroniYarp.Tcp;
using Yarp.ReverseProxy.Model;

namespace PatroniYarp.Tests.Tcp;

public class SessionRegistryTests
{
    private readonly SessionRegistry _registry = new(TimeProvider.System);
    private readonly FakeProxyStateLookup _state = new();
    private readonly TcpPortEndpoint _replicas = new("main", "replicas", "http://127.0.0.1:6433");
    private readonly TcpPortEndpoint _master = new("main", "master", "http://127.0.0.1:6432");

    [Fact]
    public void CloseIneligible_DestinationLeft_ClosesExactlyItsSessions()
    {
        var toA1 = TcpTestSupport.NewSession(_registry, _replicas, "a");
        var toA2 = TcpTestSupport.NewSession(_registry, _replicas, "a");
        var toB = TcpTestSupport.NewSession(_registry, _replicas, "b");
        var masterToA = TcpTestSupport.NewSession(_registry, _master, "a");
        _state.AddCluster(_replicas.ClusterId, "b");
        _state.AddCluster(_master.ClusterId, "a");

        var closed = _registry.CloseIneligible(_state);

        var entry = Assert.Single(closed);
        Assert.Equal(new ClosedSessions("main/replicas", "a", SessionRegistry.ReasonMemberNotEligible, 2), entry);
        Assert.True(toA1.Closing.IsCancellationRequested);
        Assert.True(toA2.Closing.IsCancellationRequested);
        Assert.False(toB.Closing.IsCancellationRequested);
        Assert.False(masterToA.Closing.IsCancellationRequested);
    }

    [Fact]
    public void CloseIneligible_PassiveUnhealthyDestination_KeepsSessions()
    {
        var session = TcpTestSupport.NewSession(_registry, _replicas, "a");
        var cluster = _state.AddCluster(_replicas.ClusterId, "a");
        cluster.Destinations["a"].Health.Passive = DestinationHealth.Unhealthy;

        Assert.Empty(_registry.CloseIneligible(_state));
        Assert.False(session.Closing.IsCancellationRequested);
    }

    [Fact]
    public void CloseIneligible_PortGone_ClosesItsSessions()
    {
        var replicas = TcpTestSupport.NewSession(_registry, _replicas, "a");
        var master = TcpTestSupport.NewSession(_registry, _master, "a");
        _state.AddCluster(_master.ClusterId, "a");

        var entry = Assert.Single(_registry.CloseIneligible(_state));

        Assert.Equal(SessionRegistry.ReasonPortRemoved, entry.Reason);
        Assert.True(replicas.Closing.IsCancellationRequested);
        Assert.False(master.Closing.IsCancellationRequested);
    }

    [Fact]
    public void CloseEndpointSessions_ReplacedListener_ClosesOnlyThatListenersSessions()
    {
        var old = TcpTestSupport.NewSession(_registry, _replicas, "a");
        var rebound = new TcpPortEndpoint("main", "replicas", "http://127.0.0.1:7433");
        var current = TcpTestSupport.NewSession(_registry, rebound, "a");

        Assert.Equal(1, _registry.CloseEndpointSessions(_replicas, "rebound"));
        Assert.True(old.Closing.IsCancellationRequested);
        Assert.False(current.Closing.IsCancellationRequested);
        Assert.Equal("rebound", old.EndReason);
    }

    [Fact]
    public void Unregister_GivesTheDestinationSlotBackAndLeavesSnapshot()
    {
        var first = TcpTestSupport.NewSession(_registry, _replicas, "a");
        var second = TcpTestSupport.NewSession(_registry, _replicas, "a");
        first.AddBytesIn(10);
        first.AddBytesOut(20);

        var snapshot = _registry.Snapshot();
        Assert.Equal([first.Id, second.Id], snapshot.Select(s => s.Id));
        Assert.Equal((10, 20), (snapshot[0].BytesIn, snapshot[0].BytesOut));
        Assert.Equal(2, _registry.OpenSessionCounts()[new DestinationKey("main/replicas", "a")]);

        _registry.Unregister(first);
        _registry.Unregister(first);

        Assert.Equal(1, _registry.GetOpenSessions("main/replicas", "a"));
        Assert.Equal(second.Id, Assert.Single(_registry.Snapshot()).Id);
    }
}
