using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Threading.Tasks.Sources;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;
using TinyServer.Interop;

namespace TinyServer.Server;

/// <summary>
/// One accepted socket served by an <see cref="EpollLoops"/> thread, as a Kestrel connection. Its
/// <see cref="PipeReader"/> receives straight from the socket when the loop says it is readable (one system call a
/// read; nothing is tried before the kernel says data is there) and its <see cref="PipeWriter"/> sends straight to the
/// socket on flush, from whatever thread flushes. Buffers are rented only while they hold bytes, so an idle connection
/// holds none. Backpressure is the socket's: nothing is received while <see cref="ServerOptions.MaxReadBuffer"/> bytes
/// wait to be consumed, and a flush completes only when the kernel has taken every byte.
/// </summary>
internal sealed class EpollConnection : ConnectionContext, IDuplexPipe, IConnectionSocketFeature
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

    public EpollConnection(Socket socket, int maxReadBuffer)
    {
        Socket = socket;
        RemoteEndPoint = socket.RemoteEndPoint;
        _reader = new SocketReader(this, maxReadBuffer);
        _writer = new SocketWriter(this);
        Features.Set<IConnectionSocketFeature>(this); // As Kestrel's socket transport: the idle timeout reads the send queue.
    }

    public Socket Socket { get; }

    public ulong Token { get; } = (ulong)Interlocked.Increment(ref s_lastToken);

    public EpollLoops.Loop? Loop { get; set; }

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

    public override IFeatureCollection Features { get; } = new FeatureCollection(4);

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
    public void OnTurn() => _reader.OnReadable(hangUp: false);

    /// <summary>Called by the loop thread with the connection's epoll events.</summary>
    public void OnEvents(uint events)
    {
        if ((events & (Epoll.Readable | Epoll.Error | Epoll.HangUp | EpollLoops.PeerClosed)) != 0)
        {
            _reader.OnReadable(hangUp: (events & (Epoll.Error | Epoll.HangUp | EpollLoops.PeerClosed)) != 0);
        }

        if ((events & (Epoll.Writable | Epoll.Error | Epoll.HangUp)) != 0)
        {
            _writer.OnWritable();
        }
    }

    private void Close(Exception? reason)
    {
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
        }

        _reader.OnClosed(reason ?? new ConnectionAbortedException("The connection was closed."));
        _writer.OnClosed();
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

    /// <summary>Receives into one contiguous rented buffer: [start, end) is unconsumed, [start, examined) was seen.</summary>
    private sealed class SocketReader(EpollConnection connection, int maxBuffer) : PipeReader, IValueTaskSource<ReadResult>
    {
        private ManualResetValueTaskSourceCore<ReadResult> _source;
        private byte[]? _buffer;
        private int _start;
        private int _end;
        private int _examined;
        private bool _readable = true; // Data may have arrived before the first read.
        private bool _hangUp; // The peer closed or the socket failed: no further edge will come, read until the end.
        private bool _peerDone;
        private Exception? _error;
        private bool _cancelNext;
        private bool _waiting;
        private bool _completed;
        private CancellationTokenRegistration _cancellation;
        private int _receivesInARow;

        private object Gate => connection._reader; // One monitor per connection, allocated only if contended.

        public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
        {
            cancellationToken.ThrowIfCancellationRequested();
            lock (Gate)
            {
                // A peer that keeps the socket full would hold the event thread in this connection's handler for good:
                // after a turn's worth of receives there, the read waits and the loop resumes it after the others.
                bool giveWay = _receivesInARow >= ReceivesPerTurn && _end == _examined && _readable && !_cancelNext
                    && connection.Loop is { IsCurrentThread: true };
                if (!giveWay && TryTake(out ReadResult result))
                {
                    return new ValueTask<ReadResult>(result);
                }

                _receivesInARow = 0;
                _waiting = true;
                _source.Reset();
                if (giveWay)
                {
                    connection.Loop!.Defer(connection);
                }

                if (cancellationToken.CanBeCanceled)
                {
                    // Under the lock, so that a completion on another thread sees it to dispose it. A token canceled
                    // meanwhile runs the callback right here (the monitor is reentrant) and fails the read.
                    _cancellation = cancellationToken.UnsafeRegister(static (state, token) => ((SocketReader)state!).OnTokenCanceled(token), this);
                }
            }

            return new ValueTask<ReadResult>(this, _source.Version);
        }

        public override bool TryRead(out ReadResult result)
        {
            lock (Gate)
            {
                return TryTake(out result);
            }
        }

        public override void AdvanceTo(SequencePosition consumed) => AdvanceTo(consumed, consumed);

        public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
        {
            lock (Gate)
            {
                if (_buffer is null || consumed.GetObject() is null)
                {
                    return;
                }

                _start = consumed.GetInteger();
                _examined = Math.Max(_start, examined.GetInteger());
                if (_start == _end)
                {
                    _start = _end = _examined = 0;
                    Return(ref _buffer); // An idle connection holds no buffer.
                }
            }
        }

        public override void CancelPendingRead()
        {
            ReadResult canceled;
            lock (Gate)
            {
                if (!_waiting)
                {
                    _cancelNext = true;
                    return;
                }

                _waiting = false;
                canceled = new ReadResult(Buffer, isCanceled: true, isCompleted: false);
            }

            Finish(canceled, null);
        }

        public override void Complete(Exception? exception = null)
        {
            lock (Gate)
            {
                _completed = true;
                _start = _end = _examined = 0;
                Return(ref _buffer);
            }
        }

        public void OnReadable(bool hangUp)
        {
            ReadResult result;
            Exception? error = null;
            lock (Gate)
            {
                _readable = true;
                _hangUp |= hangUp;
                if (!_waiting)
                {
                    return;
                }

                try
                {
                    if (!TryTake(out result))
                    {
                        return;
                    }
                }
                catch (Exception e)
                {
                    result = default;
                    error = e;
                }

                _waiting = false;
            }

            Finish(result, error);
        }

        public void OnClosed(Exception reason)
        {
            lock (Gate)
            {
                _error ??= reason;
                if (!_waiting)
                {
                    return;
                }

                _waiting = false;
            }

            Finish(default, reason);
        }

        private ReadOnlySequence<byte> Buffer => _buffer is null ? default : new ReadOnlySequence<byte>(_buffer, _start, _end - _start);

        /// <summary>Under the lock: a result if there is one to give now, receiving once if the socket is readable.</summary>
        private bool TryTake(out ReadResult result)
        {
            if (_completed)
            {
                throw new InvalidOperationException("Reading after the reader completed.");
            }

            if (_cancelNext)
            {
                _cancelNext = false;
                result = new ReadResult(Buffer, isCanceled: true, isCompleted: false);
                return true;
            }

            if (_end == _examined && !_peerDone && _error is null && _readable && !connection._closed)
            {
                Receive();
            }

            if (_end > _examined || _peerDone)
            {
                result = new ReadResult(Buffer, isCanceled: false, isCompleted: _peerDone);
                return true;
            }

            if (_error is not null)
            {
                throw _error;
            }

            result = default;
            return false;
        }

        private void Receive()
        {
            if (_buffer is null)
            {
                _buffer = Rent(BlockSize);
            }
            else if (_end == Math.Min(_buffer.Length, maxBuffer)) // The pool may hand out more than the limit: unused.
            {
                if (_start > 0)
                {
                    _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
                    _end -= _start;
                    _examined -= _start;
                    _start = 0;
                }
                else if (_end >= maxBuffer)
                {
                    return; // Full of unconsumed input: stop receiving until the handler consumes some.
                }
                else
                {
                    byte[] larger = Rent(Math.Min(_buffer.Length * 2, maxBuffer));
                    _buffer.AsSpan(0, _end).CopyTo(larger);
                    Return(ref _buffer);
                    _buffer = larger;
                }
            }

            Span<byte> space = _buffer.AsSpan(_end, Math.Min(_buffer.Length, maxBuffer) - _end);
            int received = NonBlocking.Receive(connection.Socket, space, out SocketError error);
            if (error == SocketError.WouldBlock)
            {
                _readable = false; // The next edge says when there is more.
            }
            else if (error != SocketError.Success)
            {
                _error = new IOException($"Receiving failed: {error}.", new SocketException((int)error));
            }
            else if (received == 0)
            {
                _peerDone = true;
            }
            else
            {
                _end += received;
                _receivesInARow++;
                // A short read drained the socket: the next edge says when there is more (after a hang-up none comes).
                _readable = received == space.Length || _hangUp;
            }

            if (_end == _start)
            {
                _start = _end = _examined = 0;
                Return(ref _buffer);
            }
        }

        private void OnTokenCanceled(CancellationToken token)
        {
            lock (Gate)
            {
                if (!_waiting)
                {
                    return;
                }

                _waiting = false;
            }

            Finish(default, new OperationCanceledException(token));
        }

        private void Finish(ReadResult result, Exception? error)
        {
            _cancellation.Dispose();
            _cancellation = default;
            if (error is null)
            {
                _source.SetResult(result);
            }
            else
            {
                _source.SetException(error);
            }
        }

        ReadResult IValueTaskSource<ReadResult>.GetResult(short token) => _source.GetResult(token);

        ValueTaskSourceStatus IValueTaskSource<ReadResult>.GetStatus(short token) => _source.GetStatus(token);

        void IValueTaskSource<ReadResult>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _source.OnCompleted(continuation, state, token, flags);
    }

    /// <summary>Collects replies in one contiguous rented buffer; a flush sends it, waiting for the socket if it is full.</summary>
    private sealed class SocketWriter(EpollConnection connection) : PipeWriter, IValueTaskSource<FlushResult>
    {
        private ManualResetValueTaskSourceCore<FlushResult> _source;
        private byte[]? _buffer;
        private int _written;
        private int _sent;
        private bool _writable = true;
        private bool _failed;
        private bool _cancelNext;
        private bool _waiting;

        private object Gate => connection._reader; // One monitor per connection, allocated only if contended.

        public override bool CanGetUnflushedBytes => true;

        public override long UnflushedBytes => _written - _sent;

        public override void Advance(int bytes) => _written += bytes;

        public override Memory<byte> GetMemory(int sizeHint = 0) => Reserve(sizeHint).AsMemory(_written);

        public override Span<byte> GetSpan(int sizeHint = 0) => Reserve(sizeHint).AsSpan(_written);

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
        {
            lock (Gate)
            {
                if (_cancelNext)
                {
                    _cancelNext = false;
                    return new ValueTask<FlushResult>(new FlushResult(isCanceled: true, isCompleted: false));
                }

                if (Send())
                {
                    return new ValueTask<FlushResult>(new FlushResult(isCanceled: false, isCompleted: _failed || connection._closed));
                }

                _waiting = true;
                _source.Reset();
            }

            return new ValueTask<FlushResult>(this, _source.Version);
        }

        public override void CancelPendingFlush()
        {
            lock (Gate)
            {
                if (!_waiting)
                {
                    _cancelNext = true;
                    return;
                }

                _waiting = false;
            }

            _source.SetResult(new FlushResult(isCanceled: true, isCompleted: false));
        }

        public override void Complete(Exception? exception = null)
        {
            lock (Gate)
            {
                _written = _sent = 0;
                Return(ref _buffer);
            }
        }

        public void OnWritable()
        {
            lock (Gate)
            {
                _writable = true;
                if (!_waiting || !Send())
                {
                    return;
                }

                _waiting = false;
            }

            _source.SetResult(new FlushResult(isCanceled: false, isCompleted: _failed));
        }

        public void OnClosed()
        {
            lock (Gate)
            {
                _failed = true;
                if (!_waiting)
                {
                    return;
                }

                _waiting = false;
            }

            _source.SetResult(new FlushResult(isCanceled: false, isCompleted: true));
        }

        private byte[] Reserve(int sizeHint)
        {
            int needed = Math.Max(sizeHint, 1);
            if (_buffer is null)
            {
                _buffer = Rent(Math.Max(BlockSize, needed));
            }
            else if (_buffer.Length - _written < needed)
            {
                byte[] larger = Rent(Math.Max(_buffer.Length * 2, _written + needed));
                _buffer.AsSpan(0, _written).CopyTo(larger);
                Return(ref _buffer);
                _buffer = larger;
            }

            return _buffer;
        }

        /// <summary>Under the lock: sends what is buffered; false when the socket is full and the rest must wait.</summary>
        private bool Send()
        {
            while (_sent < _written && !_failed && !connection._closed)
            {
                if (!_writable)
                {
                    return false;
                }

                int sent = NonBlocking.Send(connection.Socket, _buffer.AsSpan(_sent, _written - _sent), out SocketError error);
                if (error == SocketError.WouldBlock)
                {
                    _writable = false;
                    return false;
                }

                if (error != SocketError.Success)
                {
                    _failed = true; // The peer is gone: the flush reports the connection completed.
                    break;
                }

                _sent += sent;
            }

            _written = _sent = 0;
            Return(ref _buffer);
            return true;
        }

        FlushResult IValueTaskSource<FlushResult>.GetResult(short token) => _source.GetResult(token);

        ValueTaskSourceStatus IValueTaskSource<FlushResult>.GetStatus(short token) => _source.GetStatus(token);

        void IValueTaskSource<FlushResult>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _source.OnCompleted(continuation, state, token, flags);
    }
}
