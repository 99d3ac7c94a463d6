using System.Diagnostics.Metrics;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using TinyServer.Transport.Epoll;

namespace TinyServer.Server;

/// <summary>
/// The epoll transport (the Linux default, src/TinyServer.Transport.Epoll): <see cref="EpollConnectionContextFactory"/>,
/// configured here, and only here, from <see cref="ServerOptions"/>. The only server type that names it.
/// </summary>
internal sealed class EpollTransport(ServerOptions options, ILoggerFactory loggers, IMeterFactory meters) : IConnectionTransport
{
    private readonly EpollConnectionContextFactory _connections = new(
        new EpollTransportOptions
        {
            IoThreads = options.EffectiveIoThreads,
            // A line waiting for its LF stays in the reader's buffer, which must hold the longest line to find its end.
            MaxReadBuffer = Math.Max(options.MaxReadBuffer, options.MaxLineLength + 2),
        },
        loggers,
        meters);

    public long Open => _connections.Open;

    public ConnectionContext Create(Socket accepted) => _connections.Create(accepted);

    public void Dispose() => _connections.Dispose();
}
