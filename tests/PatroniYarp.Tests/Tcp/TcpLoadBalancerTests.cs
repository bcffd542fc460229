using PatroniYarp.Tcp;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace PatroniYarp.Tests.Tcp;

public class TcpLoadBalancerTests
{
    private const string Port = "main/replicas";

    private readonly SessionRegistry _registry = new(TimeProvider.System);

    private TcpLoadBalancer Balancer => new(_registry);

    private static DestinationState[] Destinations(params string[] ids) => [.. ids.Select(id => new DestinationState(id))];

    [Fact]
    public void Pick_DifferentCounts_PicksFewestAndReserves()
    {
        var balancer = Balancer;
        _registry.GetCounter(Port, "a").Increment();
        _registry.GetCounter(Port, "a").Increment();
        _registry.GetCounter(Port, "b").Increment();

        var pick = balancer.Pick(Port, Destinations("a", "b", "c"));

        Assert.Equal("c", pick!.Value.Destination.DestinationId);
        Assert.Equal(1, _registry.GetOpenSessions(Port, "c"));
    }

    [Fact]
    public void Pick_MarkedUnhealthyBeforeYarpRecomputedAvailable_Skipped()
    {
        // YARP updates the available set on a thread-pool hop after SetPassive; the health flag is set at once.
        var destinations = Destinations("failed", "good");
        destinations[0].Health.Passive = DestinationHealth.Unhealthy;

        for (var i = 0; i < 4; i++)
        {
            var pick = Balancer.Pick(Port, destinations)!.Value;
            Assert.Equal("good", pick.Destination.DestinationId);
            pick.Counter.Decrement();
        }
    }

    [Fact]
    public void Pick_EqualCounts_RotatesEvenly()
    {
        var balancer = Balancer;
        var destinations = Destinations("a", "b", "c");
        var shares = new Dictionary<string, int>();

        for (var i = 0; i < 300; i++)
        {
            var pick = balancer.Pick(Port, destinations)!.Value;
            shares[pick.Destination.DestinationId] = shares.GetValueOrDefault(pick.Destination.DestinationId) + 1;
            pick.Counter.Decrement(); // the session ended: all counts are equal again
        }

        Assert.Equal([100, 100, 100], shares.Values);
    }

    [Fact]
    public void Pick_SessionsKeptOpen_SplitEvenly()
    {
        var balancer = Balancer;
        var destinations = Destinations("a", "b");

        for (var i = 0; i < 4; i++)
        {
            balancer.Pick(Port, destinations);
        }

        Assert.Equal(2, _registry.GetOpenSessions(Port, "a"));
        Assert.Equal(2, _registry.GetOpenSessions(Port, "b"));
    }

    [Fact]
    public void Pick_NewStateObjectsAfterConfigUpdate_KeepsCounters()
    {
        var balancer = Balancer;
        balancer.Pick(Port, Destinations("a"));
        balancer.Pick(Port, Destinations("a"));

        // A reload gives new state objects with the same destination ids.
        var pick = balancer.Pick(Port, Destinations("a", "b"));

        Assert.Equal("b", pick!.Value.Destination.DestinationId);
        Assert.Equal(2, _registry.GetOpenSessions(Port, "a"));
    }

    [Fact]
    public void Pick_CountsArePerPort()
    {
        var balancer = Balancer;
        balancer.Pick("main/other", Destinations("a"));

        var pick = balancer.Pick(Port, Destinations("a", "b"));

        Assert.NotNull(pick);
        Assert.Equal(1, _registry.GetOpenSessions(Port, "a") + _registry.GetOpenSessions(Port, "b"));
        Assert.Equal(1, _registry.GetOpenSessions("main/other", "a"));
    }

    [Fact]
    public void Pick_AllExcludedOrNone_ReturnsNull()
    {
        var balancer = Balancer;

        Assert.Null(balancer.Pick(Port, []));
        Assert.Null(balancer.Pick(Port, Destinations("a", "b"), ["a", "b"]));
        Assert.Equal("b", balancer.Pick(Port, Destinations("a", "b"), ["a"])!.Value.Destination.DestinationId);
    }
}
