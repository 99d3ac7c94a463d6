using System.Diagnostics.Metrics;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;

namespace TinyServer.Server;

/// <summary>
/// What serves a connection once it is accepted: the epoll transport (<see cref="EpollTransport"/>, the Linux
/// default) or Kestrel's socket transport (<see cref="SocketsTransport"/>, <c>--transport sockets</c>). Exactly one
/// is registered (<see cref="Create(ServerOptions, ILoggerFactory, IMeterFactory)"/>);
/// the listener (<see cref="SocketListener"/>) and admission reach it only through this interface.
/// </summary>
internal interface IConnectionTransport : IDisposable
{
    /// <summary>Sockets this transport serves and has not closed yet, where it counts them; 0 where it does not.</summary>
    long Open { get; }

    /// <summary>Serves <paramref name="accepted"/> (a connected stream socket) from now on; the connection owns it.</summary>
    ConnectionContext Create(Socket accepted);

    /// <summary>The transport <see cref="ServerOptions.Transport"/> chooses, configured from the options.</summary>
    static IConnectionTransport Create(ServerOptions options, ILoggerFactory loggers, IMeterFactory meters) =>
        options.Transport == TransportKind.Sockets
            ? new SocketsTransport(options, loggers)
            : new EpollTransport(options, loggers, meters);
}
