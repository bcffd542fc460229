using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Options;
using PatroniYarp.Diagnostics;

namespace PatroniYarp.Tcp;

/// <summary>
/// Kestrel's own socket transport for the HTTP listeners (admin API, health checks), held to their share of the
/// open-files budget (<see cref="DescriptorBudget.MaxHttpConnections"/>). Unchecked, a flood of HTTP connections would use
/// up the descriptors the runtime needs (it dies "Out of memory." when it cannot open a file), and once accept fails
/// with EMFILE, Kestrel's accept loop retries at once, spinning a core.
/// </summary>
internal sealed class HttpListenerFactory(TcpEndpointManager endpoints, IOptions<SocketTransportOptions> options,
    ILoggerFactory loggerFactory, DescriptorBudget budget, ProxyMetrics metrics, TimeProvider time, ILogger<HttpListenerFactory> logger)
    : IConnectionListenerFactory, IConnectionListenerFactorySelector
{
    private readonly SocketTransportFactory _sockets = new(options, loggerFactory);

    public bool CanBind(EndPoint endpoint) => endpoint is IPEndPoint ip && !endpoints.IsTcpPort(ip.Port);

    public async ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        var listener = await _sockets.BindAsync(endpoint, cancellationToken).ConfigureAwait(false);
        return new Listener(listener, budget, new AcceptPause(listener.EndPoint, metrics, time, logger));
    }

    private sealed class Listener(IConnectionListener sockets, DescriptorBudget budget, AcceptPause pause) : IConnectionListener
    {
        public EndPoint EndPoint => sockets.EndPoint;

        public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
        {
            while (!budget.TryTakeHttp())
            {
                if (!await pause.WaitAsync(ProxyMetrics.PauseReasons.HttpLimit,
                    static share => $"{share.HttpTaken} HTTP connections are open, the most the open-files limit ({share.Limit}) leaves room for",
                    budget, cancellationToken).ConfigureAwait(false))
                {
                    return null;
                }
            }
            ConnectionContext? accepted;
            try
            {
                accepted = await sockets.AcceptAsync(cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                budget.ReturnHttp();
                throw;
            }
            if (accepted is null)
            {
                // Unbound: the room taken for it goes back.
                budget.ReturnHttp();
                return null;
            }
            pause.End();
            return new BudgetedConnection(accepted, budget);
        }

        public ValueTask UnbindAsync(CancellationToken cancellationToken = default) => sockets.UnbindAsync(cancellationToken);

        public ValueTask DisposeAsync() => sockets.DisposeAsync();
    }

    /// <summary>Kestrel's connection, giving its room back when Kestrel disposes it (it always does, at the end).</summary>
    private sealed class BudgetedConnection(ConnectionContext connection, DescriptorBudget budget) : ConnectionContext
    {
        private int _returned;

        public override string ConnectionId { get => connection.ConnectionId; set => connection.ConnectionId = value; }

        public override IFeatureCollection Features => connection.Features;

        public override IDictionary<object, object?> Items { get => connection.Items; set => connection.Items = value; }

        public override IDuplexPipe Transport { get => connection.Transport; set => connection.Transport = value; }

        public override CancellationToken ConnectionClosed { get => connection.ConnectionClosed; set => connection.ConnectionClosed = value; }

        public override EndPoint? LocalEndPoint { get => connection.LocalEndPoint; set => connection.LocalEndPoint = value; }

        public override EndPoint? RemoteEndPoint { get => connection.RemoteEndPoint; set => connection.RemoteEndPoint = value; }

        public override void Abort(ConnectionAbortedException abortReason) => connection.Abort(abortReason);

        public override async ValueTask DisposeAsync()
        {
            try
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }
            finally
            {
                if (Interlocked.Exchange(ref _returned, 1) == 0)
                {
                    budget.ReturnHttp();
                }
            }
        }
    }
}
