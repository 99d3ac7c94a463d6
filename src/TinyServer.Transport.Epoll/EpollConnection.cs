using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;

namespace TinyServer.Transport.Epoll;

/// <summary>
/// One accepted socket served by an <see cref="EpollLoops"/> thread, as a Kestrel connection. Its
/// <see cref="PipeReader"/> receives straight from the socket when the loop says it is readable (one system call a
/// read; nothing is tried before the kernel says data is there) and its <see cref="PipeWriter"/> sends straight to the
/// socket on flush, from whatever thread flushes. Buffers are rented only while they hold bytes, so an idle connection
/// holds none. Backpressure is the socket's: nothing is received while <see cref="EpollTransportOptions.MaxReadBuffer"/> bytes
/// wait to be consumed, and a flush completes only when the kernel has taken every byte.
/// </summary>
internal sealed partial class EpollConnection : ConnectionContext, IDuplexPipe, IConnectionSocketFeature, IFeatureCollection
{
    private const int BlockSize = 4096;

    /// <summary>Receives a handler may make in a row on its event thread before the other connections get their turn.</summary>
    private const int ReceivesPerTurn = 16;
    private static long s_lastToken;

    private readonly SocketReader _reader;
    private readonly SocketWriter _writer;
    private IDuplexPipe? _transport;
    private EndPoint? _localEndPoint;
    private string? _connectionId;
    private IDictionary<object, object?>? _items;
    private bool _closed;
    private CancellationTokenSource? _closedSource;
    private FeatureSlots _features;

    public EpollConnection(Socket socket, int maxReadBuffer)
    {
        Socket = socket;
        RemoteEndPoint = socket.RemoteEndPoint;
        _reader = new SocketReader(this, maxReadBuffer);
        _writer = new SocketWriter(this);
        _features.Set(typeof(IConnectionSocketFeature), this); // As Kestrel's socket transport: the idle timeout reads the send queue.
    }

    public Socket Socket { get; }

    public ulong Token { get; } = (ulong)Interlocked.Increment(ref s_lastToken);

    public EpollLoops.Loop? Loop { get; set; }

    /// <summary>This connection's place in its loop's table; set by the loop.</summary>
    public int Slot { get; set; }

    public PipeReader Input => _reader;

    public PipeWriter Output => _writer;

    /// <summary>This connection's own pipes, unless connection middleware (TLS) put its own in front of them.</summary>
    public override IDuplexPipe Transport
    {
        get => _transport ?? this;
        set => _transport = value;
    }

    public override string ConnectionId
    {
        get => _connectionId ??= Token.ToString("x", System.Globalization.CultureInfo.InvariantCulture);
        set => _connectionId = value;
    }

    /// <summary>The connection itself: its features are kept in <see cref="FeatureSlots"/>, not in a dictionary.</summary>
    public override IFeatureCollection Features => this;

    public override IDictionary<object, object?> Items
    {
        get => _items ??= new Dictionary<object, object?>();
        set => _items = value;
    }

    /// <summary>Looked up when asked for (rarely): one object less per connection.</summary>
    public override EndPoint? LocalEndPoint
    {
        get
        {
            try
            {
                return _localEndPoint ??= Socket.LocalEndPoint;
            }
            catch (ObjectDisposedException)
            {
                return null; // Asked for after the close.
            }
        }

        set => _localEndPoint = value;
    }

    public override EndPoint? RemoteEndPoint { get; set; }

    /// <summary>
    /// Canceled once the connection has closed (by <see cref="Abort"/>, <see cref="DisposeAsync"/> or a fault in its
    /// event loop), on the thread pool as in Kestrel's socket transport: its callbacks never run on the event thread.
    /// Created when first asked for: a connection nobody asks about costs nothing. Set only by the transport.
    /// </summary>
    public override CancellationToken ConnectionClosed
    {
        get
        {
            lock (_reader)
            {
                return _closed ? new CancellationToken(canceled: true) : (_closedSource ??= new CancellationTokenSource()).Token;
            }
        }

        set => throw new NotSupportedException("The epoll transport owns ConnectionClosed.");
    }

    /// <summary>Closes the socket at once: a waiting read fails, a waiting flush ends, queued replies are dropped.</summary>
    public override void Abort(ConnectionAbortedException abortReason) => Close(abortReason);

    public override ValueTask DisposeAsync()
    {
        _reader.Complete();
        _writer.Complete();
        Close(null);
        return ValueTask.CompletedTask;
    }

    /// <summary>Called by the loop thread for a read that gave way (<see cref="ReceivesPerTurn"/>): its next turn.</summary>
    public void OnTurn() => _reader.OnTurn();

    /// <summary>Called by the loop thread at the end of its turn, for a flush that left its bytes to be sent then.</summary>
    public void OnTurnEnd() => _writer.OnTurnEnd();

    /// <summary>Called by the loop thread with the connection's epoll events.</summary>
    public void OnEvents(uint events)
    {
        if ((events & (Interop.Epoll.Readable | Interop.Epoll.Error | Interop.Epoll.HangUp | Interop.Epoll.PeerClosed)) != 0)
        {
            _reader.OnReadable(hangUp: (events & (Interop.Epoll.Error | Interop.Epoll.HangUp | Interop.Epoll.PeerClosed)) != 0);
        }

        if ((events & (Interop.Epoll.Writable | Interop.Epoll.Error | Interop.Epoll.HangUp)) != 0)
        {
            _writer.OnWritable();
        }
    }

    private void Close(Exception? reason)
    {
        CancellationTokenSource? closed;
        lock (_reader)
        {
            if (_closed)
            {
                return;
            }

            _closed = true;
            Loop?.Remove(this);
            try
            {
                Socket.Shutdown(SocketShutdown.Both);
            }
            catch (SocketException)
            {
                // Reset by the peer already.
            }

            Socket.Dispose();
            closed = _closedSource;
        }

        if (closed is not null)
        {
            ThreadPool.UnsafeQueueUserWorkItem(static source => source.Cancel(), closed, preferLocal: false);
        }

        try
        {
            _reader.OnClosed(reason ?? new ConnectionAbortedException("The connection was closed."));
        }
        finally
        {
            _writer.OnClosed(); // Ends a waiting flush even if the read's continuation threw.
        }
    }

    private static byte[] Rent(int size) => ArrayPool<byte>.Shared.Rent(size);

    private static void Return(ref byte[]? buffer)
    {
        if (buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            buffer = null;
        }
    }
}
