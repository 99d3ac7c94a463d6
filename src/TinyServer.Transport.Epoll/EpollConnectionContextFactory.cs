using System.Diagnostics.Metrics;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;

namespace TinyServer.Transport.Epoll;

/// <summary>
/// The epoll transport's entry point, in the shape of Kestrel's <c>SocketConnectionContextFactory</c>: it turns an
/// accepted socket into a Kestrel connection served by its event loops (<see cref="EpollLoops"/>). Whoever listens
/// (binding, accepting, backing off, admission) stays outside the transport and reaches it only through this type and
/// <see cref="EpollTransportOptions"/>.
/// </summary>
/// <remarks>
/// Metrics, on the <c>TinyServer</c> meter: <c>tinyserver.transport.faults</c>, exceptions caught in an event loop
/// (each aborted its connection).
/// </remarks>
public sealed class EpollConnectionContextFactory : IDisposable
{
    public const string MeterName = "TinyServer";

    private readonly EpollLoops _loops;
    private readonly int _maxReadBuffer;
    private readonly Meter? _meter;

    public EpollConnectionContextFactory(EpollTransportOptions options, ILoggerFactory loggers, IMeterFactory? meters = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(options.IoThreads, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxReadBuffer, 1);
        _maxReadBuffer = options.MaxReadBuffer;
        _loops = new EpollLoops(options.IoThreads, loggers.CreateLogger("TinyServer.Transport.Epoll"));
        // The factory hands out one meter per name: the server's own TinyServer meter when it made one.
        _meter = meters?.Create(new MeterOptions(MeterName));
        _meter?.CreateObservableCounter("tinyserver.transport.faults", () => _loops.Faults, "{fault}", "Exceptions caught in an epoll event loop; each aborted its connection");
    }

    /// <summary>Sockets handed to <see cref="Create"/> and not yet closed.</summary>
    public long Open => _loops.Open;

    /// <summary>Exceptions caught in the event loops; each aborted its connection (<c>tinyserver.transport.faults</c>).</summary>
    public long Faults => _loops.Faults;

    /// <summary>Serves <paramref name="accepted"/> (a connected stream socket) from now on; the connection owns it.</summary>
    public ConnectionContext Create(Socket accepted)
    {
        var connection = new EpollConnection(accepted, _maxReadBuffer);
        _loops.Add(connection);
        return connection;
    }

    /// <summary>Stops the event loops (within a second). Connections still open are not closed.</summary>
    public void Dispose() => _loops.Dispose();
}
