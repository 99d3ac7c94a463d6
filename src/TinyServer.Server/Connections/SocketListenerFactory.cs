using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;

namespace TinyServer.Server;

/// <summary>
/// Kestrel's listener factory for the line and TLS ports, the Unix socket and the metrics port, whichever transport
/// serves them: it opens the listening socket (<see cref="ListenSocket"/>) and accepts from it with a
/// <see cref="SocketListener"/>, which admits (<see cref="ConnectionAdmission"/>), backs off (<see cref="AcceptBackoff"/>)
/// and hands each connection to the chosen <see cref="IConnectionTransport"/>. A socket passed by socket activation
/// (Kestrel's <c>ListenHandle</c>, a <see cref="FileHandleEndPoint"/>) is served as it is (<see cref="SocketActivation"/>).
/// </summary>
internal sealed class SocketListenerFactory(ServerOptions options, ConnectionAdmission admission, IConnectionTransport transport, ILoggerFactory loggers) : IConnectionListenerFactory
{
    private readonly ILogger _logger = loggers.CreateLogger("TinyServer.Server.Transport");

    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        if (endpoint is FileHandleEndPoint inherited)
        {
            // Socket activation: serve the passed socket as it is (its address, backlog and mode are the unit's).
            Socket passed = SocketActivation.Open(inherited);
            AcceptBackoff.StartTimer();
            string? passedPath = passed.AddressFamily == AddressFamily.Unix ? passed.LocalEndPoint?.ToString() : null;
            return ValueTask.FromResult<IConnectionListener>(new SocketListener(socket: passed, passedPath, admission, transport, _logger, inheritedDescriptor: (int)inherited.FileHandle));
        }

        Socket socket = ListenSocket.Open(endpoint, options);
        AcceptBackoff.StartTimer();
        string? unixPath = (endpoint as UnixDomainSocketEndPoint)?.ToString();
        return ValueTask.FromResult<IConnectionListener>(new SocketListener(socket, unixPath, admission, transport, _logger));
    }
}
