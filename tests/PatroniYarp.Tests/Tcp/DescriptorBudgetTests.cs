using PatroniYarp.Tcp;

namespace PatroniYarp.Tests.Tcp;

public class DescriptorBudgetTests
{
    [Theory]
    // Two descriptors a session, after what is open and a reserve of 64 or a sixteenth of the limit.
    [InlineData(400, 270, 33)]
    [InlineData(1024, 270, 345)]
    [InlineData(20_000, 270, 9240)]
    [InlineData(300, 270, 1)]
    public void MaxSessions_Limit_RoomForTwoDescriptorsPerSessionAfterTheReserve(long limit, int open, long expected)
    {
        Assert.Equal(expected, new DescriptorBudget(limit, open).MaxSessions);
    }

    [Fact]
    public void TryTake_Full_RefusedUntilOneIsReturned()
    {
        var budget = new DescriptorBudget(400, 270);
        for (var i = 0; i < budget.MaxSessions; i++)
        {
            Assert.True(budget.TryTake());
        }

        Assert.False(budget.TryTake());
        Assert.Equal(budget.MaxSessions, budget.Taken);
        budget.Return();
        Assert.True(budget.TryTake());
    }

    [Theory]
    // Half the reserve (64 or a sixteenth of the limit), whatever the sessions take.
    [InlineData(400, 32)]
    [InlineData(20_000, 625)]
    public void MaxHttpConnections_Limit_HalfTheReserve(long limit, long expected)
    {
        Assert.Equal(expected, new DescriptorBudget(limit, 270).MaxHttpConnections);
    }

    [Fact]
    public void TryTakeHttp_Full_RefusedUntilOneIsReturnedAndSessionsUnaffected()
    {
        var budget = new DescriptorBudget(400, 270);
        for (var i = 0; i < budget.MaxHttpConnections; i++)
        {
            Assert.True(budget.TryTakeHttp());
        }

        Assert.False(budget.TryTakeHttp());
        Assert.Equal(budget.MaxHttpConnections, budget.HttpTaken);
        Assert.True(budget.TryTake());
        budget.ReturnHttp();
        Assert.True(budget.TryTakeHttp());
    }
}
