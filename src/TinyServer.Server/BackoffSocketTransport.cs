using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;

namespace TinyServer.Server;

/// <summary>
/// Kestrel's socket transport with one change: when accepting fails for lack of resources (out of file
/// descriptors, out of memory), it waits and retries, backing off from 10 ms to 1 s, instead of retrying at once
/// in a loop that holds a core at 100% until descriptors free up; and it does not accept at all while connections
/// would eat into the descriptors the runtime needs (<see cref="FileDescriptorLimit"/>). The pending connections
/// stay in the listen backlog meanwhile and are served as soon as clients leave.
/// </summary>
internal sealed class BackoffSocketTransport(ServerOptions options, ConnectionTracker tracker, FileDescriptorLimit descriptors, ILoggerFactory loggers) : IConnectionListenerFactory, IDisposable
{
    private const int MinDelayMs = 10;
    private const int MaxDelayMs = 1000;

    private readonly SocketConnectionContextFactory _connections = new(
        new SocketConnectionFactoryOptions
        {
            MaxReadBufferSize = options.MaxReadBuffer,
            MaxWriteBufferSize = options.MaxWriteBuffer,
        },
        loggers.CreateLogger("Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets"));

    private readonly ILogger _logger = loggers.CreateLogger("TinyServer.Server.Transport");
    private readonly ConnectionTracker _tracker = tracker;
    private readonly FileDescriptorLimit _descriptors = descriptors;

    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (endpoint is IPEndPoint { Address: var address } && address.Equals(IPAddress.IPv6Any))
            {
                socket.DualMode = true;
            }

            // Rebinding while old connections linger in TIME_WAIT is fine (a second listener is still refused).
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            socket.Bind(endpoint);
            socket.Listen(options.ListenBacklog);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            socket.Dispose();
            throw new AddressInUseException(e.Message, e);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        // Start the runtime's timer thread now, while resources are plentiful: the accept backoff relies on it.
        Task.Delay(1, CancellationToken.None).Wait(CancellationToken.None);
        return ValueTask.FromResult<IConnectionListener>(new Listener(socket, this));
    }

    public void Dispose() => _connections.Dispose();

    private sealed class Listener(Socket socket, BackoffSocketTransport transport) : IConnectionListener
    {
        private int _delayMs;

        public EndPoint EndPoint { get; } = socket.LocalEndPoint!;

        public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
        {
            while (true)
            {
                Socket? accepted = null;
                try
                {
                    if (!transport._descriptors.HasRoomFor(transport._tracker.Active))
                    {
                        throw new SocketException((int)SocketError.TooManyOpenSockets, "no descriptors to spare for another connection");
                    }

                    accepted = await socket.AcceptAsync(cancellationToken);
                    accepted.NoDelay = true;
                    ConnectionContext connection = transport._connections.Create(accepted);
                    _delayMs = 0;
                    return connection;
                }
                catch (Exception e) when (e is ObjectDisposedException or OperationCanceledException
                    || e is SocketException { SocketErrorCode: SocketError.OperationAborted })
                {
                    accepted?.Dispose();
                    return null; // Unbound: the server is stopping.
                }
                catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
                {
                    // The peer gave up while waiting in the backlog: take the next one.
                }
                catch (Exception e)
                {
                    // Out of descriptors or memory. Kestrel stops accepting for good if this method throws, so wait
                    // and retry, backing off; the wait must not need resources either: Task.Delay may have to start
                    // the timer thread, which fails out of descriptors, so the timer is started at bind time. One
                    // warning per episode, not one per retry.
                    accepted?.Dispose();
                    _delayMs = _delayMs == 0 ? MinDelayMs : Math.Min(_delayMs * 2, MaxDelayMs);
                    if (_delayMs == MinDelayMs)
                    {
                        Log.AcceptFailed(transport._logger, EndPoint, e.Message);
                    }

                    Log.AcceptRetry(transport._logger, EndPoint, e.ToString(), _delayMs);
                    await Task.Delay(_delayMs, CancellationToken.None);
                }
            }
        }

        public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
        {
            socket.Dispose();
            return ValueTask.CompletedTask;
        }

        public ValueTask DisposeAsync()
        {
            socket.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
