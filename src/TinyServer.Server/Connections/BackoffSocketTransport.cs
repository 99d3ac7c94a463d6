using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using TinyServer.Transport.Epoll;

namespace TinyServer.Server;

/// <summary>
/// The listening side of both transports: it accepts each connection and hands it to the epoll transport
/// (<see cref="EpollConnectionContextFactory"/>, the Linux default) or to Kestrel's socket transport
/// (<see cref="SocketConnectionContextFactory"/>), each configured here, and only here, from <see cref="ServerOptions"/>.
/// Unlike Kestrel's own listener, when accepting fails for lack of resources (out of file descriptors, out of memory),
/// it waits and retries, backing off from 10 ms to 1 s, instead of retrying at once in a loop that holds a core at 100%
/// until descriptors free up; and it does not accept at all while connections would eat into the descriptors the
/// runtime needs (<see cref="FileDescriptorLimit"/>). The pending connections stay in the listen backlog meanwhile and
/// are served as soon as clients leave.
/// </summary>
internal sealed class BackoffSocketTransport(ServerOptions options, ConnectionTracker tracker, FileDescriptorLimit descriptors, ILoggerFactory loggers, IMeterFactory meters) : IConnectionListenerFactory, IDisposable
{
    private const int MinDelayMs = 10;
    private const int MaxDelayMs = 1000;

    private readonly SocketConnectionContextFactory? _connections = options.Transport != TransportKind.Sockets ? null : new(
        new SocketConnectionFactoryOptions
        {
            MaxReadBufferSize = options.MaxReadBuffer,
            MaxWriteBufferSize = options.MaxWriteBuffer,
            UnsafePreferInlineScheduling = options.InlineIo,
            IOQueueCount = options.IoQueues,
            WaitForDataBeforeAllocatingBuffer = options.WaitForData,
        },
        loggers.CreateLogger("Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets"));

    private readonly EpollConnectionContextFactory? _epoll = options.Transport != TransportKind.Epoll ? null : new(
        new EpollTransportOptions
        {
            IoThreads = options.EffectiveIoThreads,
            // A line waiting for its LF stays in the reader's buffer, which must hold the longest line to find its end.
            MaxReadBuffer = Math.Max(options.MaxReadBuffer, options.MaxLineLength + 2),
        },
        loggers,
        meters);

    private readonly ILogger _logger = loggers.CreateLogger("TinyServer.Server.Transport");
    private readonly ConnectionTracker _tracker = tracker;
    private readonly FileDescriptorLimit _descriptors = descriptors;

    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        string? unixPath = (endpoint as UnixDomainSocketEndPoint)?.ToString();
        if (unixPath is not null)
        {
            UnixSocketFile.PrepareForBind(unixPath);
        }

        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, unixPath is null ? ProtocolType.Tcp : ProtocolType.Unspecified);
        bool bound = false;
        try
        {
            if (endpoint is IPEndPoint { Address: var address } && address.Equals(IPAddress.IPv6Any))
            {
                socket.DualMode = true;
            }

            if (unixPath is null)
            {
                AllowRebindDuringTimeWait(socket);
            }

            socket.Bind(endpoint);
            bound = true;
            if (unixPath is not null)
            {
                // Before listen(): nobody can connect until the file has its permissions.
                UnixSocketFile.SetMode(unixPath, options.UnixSocketMode);
            }

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
            if (bound && unixPath is not null)
            {
                UnixSocketFile.Remove(unixPath);
            }

            throw;
        }

        // Start the runtime's timer thread now, while resources are plentiful: the accept backoff relies on it.
        Task.Delay(1, CancellationToken.None).Wait(CancellationToken.None);
        return ValueTask.FromResult<IConnectionListener>(new Listener(socket, unixPath, this));
    }

    /// <summary>
    /// Sets SO_REUSEADDR alone, so that a restart can bind while the last run's connections linger in TIME_WAIT; a
    /// second listener on the port is still refused. Not through <c>SocketOptionName.ReuseAddress</c>: on Unix .NET
    /// sets SO_REUSEPORT with it (Windows' SO_REUSEADDR means that), and then a second server binds the same port
    /// without a word and the kernel shares the new connections between the two. Windows rebinds during TIME_WAIT
    /// anyway, and its SO_REUSEADDR would let another socket take the port, so it is left alone there. (.NET's own
    /// Bind sets SO_REUSEADDR on Linux too; setting it here keeps the restart from depending on that.)
    /// </summary>
    private static void AllowRebindDuringTimeWait(Socket socket)
    {
        (int level, int name) = OperatingSystem.IsLinux() ? (1, 2) // SOL_SOCKET, SO_REUSEADDR
            : OperatingSystem.IsMacOS() || OperatingSystem.IsFreeBSD() ? (0xffff, 4)
            : (0, 0);
        if (level != 0)
        {
            socket.SetRawSocketOption(level, name, BitConverter.GetBytes(1));
        }
    }

    public void Dispose()
    {
        _connections?.Dispose();
        _epoll?.Dispose();
    }

    // One of the two transports is set, never both.
    private ConnectionContext Create(Socket accepted) => _epoll?.Create(accepted) ?? _connections!.Create(accepted);

    /// <param name="unixPath">The socket file of a Unix domain socket listener, removed when it stops; null for TCP.</param>
    private sealed class Listener(Socket socket, string? unixPath, BackoffSocketTransport transport) : IConnectionListener
    {
        private int _delayMs;
        private int _closed;

        public EndPoint EndPoint { get; } = socket.LocalEndPoint!;

        public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
        {
            while (true)
            {
                Socket? accepted = null;
                try
                {
                    if (!transport._descriptors.HasRoomFor(Math.Max(transport._tracker.Open, transport._epoll?.Open ?? 0)))
                    {
                        throw new SocketException((int)SocketError.TooManyOpenSockets, "no descriptors to spare for another connection");
                    }

                    accepted = await socket.AcceptAsync(cancellationToken);
                    if (unixPath is null)
                    {
                        accepted.NoDelay = true;
                    }

                    ConnectionContext connection = transport.Create(accepted);
                    if (unixPath is not null)
                    {
                        // A Unix client's own address is almost always unnamed: name the socket it came through.
                        connection.RemoteEndPoint = new UnixPeer(unixPath);
                    }
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

        public ValueTask UnbindAsync(CancellationToken cancellationToken = default) => DisposeAsync();

        public ValueTask DisposeAsync()
        {
            socket.Dispose();
            if (unixPath is not null && Interlocked.Exchange(ref _closed, 1) == 0)
            {
                UnixSocketFile.Remove(unixPath);
            }

            return ValueTask.CompletedTask;
        }
    }
}

/// <summary>The remote end of a Unix socket connection, as logs show it: <c>unix:/path/of/the/listening/socket</c>.</summary>
internal sealed class UnixPeer(string path) : EndPoint
{
    public override AddressFamily AddressFamily => AddressFamily.Unix;

    public override string ToString() => $"unix:{path}";
}
