using System.Net;
using Polly;
using Polly.Timeout;

namespace PatroniYarp.Tcp;

/// <summary>Connects a backend socket on a TCP loop within a port's connect_timeout (Polly's timeout).</summary>
internal sealed class BackendConnector
{
    private static readonly ResiliencePropertyKey<TimeSpan> TimeoutKey = new("PatroniYarp.Tcp.ConnectTimeout");

    private readonly ResiliencePipeline _pipeline = new ResiliencePipelineBuilder()
        .AddTimeout(new TimeoutStrategyOptions
        {
            // The timeout differs per port, so each execution carries its own in the context.
            TimeoutGenerator = static args => ValueTask.FromResult(args.Context.Properties.GetValue(TimeoutKey, TimeSpan.FromSeconds(2))),
        })
        .Build();

    /// <exception cref="System.Net.Sockets.SocketException">The connect failed.</exception>
    /// <exception cref="TimeoutRejectedException">It took longer than <paramref name="timeout"/>.</exception>
    public async Task<EventLoopSocket> ConnectAsync(SocketEventLoop loop, EndPoint target, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        context.Properties.Set(TimeoutKey, timeout);
        try
        {
            return await _pipeline.ExecuteAsync(
                static (ctx, state) => new ValueTask<EventLoopSocket>(EventLoopSocket.ConnectAsync(state.loop, state.target, ctx.CancellationToken)),
                context, (loop, target)).ConfigureAwait(false);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }
}
