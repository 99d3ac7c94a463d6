using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Threading.Tasks.Sources;
using TinyServer.Interop;

namespace TinyServer.Transport.Epoll;

internal sealed partial class EpollConnection
{
    /// <summary>
    /// Collects replies in one contiguous rented buffer; a flush sends it, waiting for the socket if it is full. A flush
    /// on the connection's own event thread, with room in the socket and less than <see cref="DeferredSendLimit"/>
    /// unsent, completes at once and the loop sends at the end of its turn, after the other connections' events (as
    /// Redis writes its replies before it sleeps): the replies of one turn leave in a burst, so the peer wakes once
    /// for them, not once each. Bytes so flushed are never dropped for want of room: what the socket did not take
    /// then goes when it is writable, and a later flush waits for it.
    /// </summary>
    private sealed class SocketWriter(EpollConnection connection) : PipeWriter, IValueTaskSource<FlushResult>
    {
        /// <summary>Unsent bytes above which a flush on the event thread sends at once instead of at the end of the turn.</summary>
        private const int DeferredSendLimit = 16 * 1024;

        private ManualResetValueTaskSourceCore<FlushResult> _source;
        private byte[]? _buffer;
        private int _written;
        private int _sent;
        // Whether the socket has room, without the lock on the event thread's side (as the reader's readable edges):
        // the loop counts the writable edges, and a send that found the socket full records the count it read before.
        private int _edges;
        private int _fullAt;
        private volatile bool _full;
        private bool _failed;
        private bool _cancelNext;
        private volatile bool _waiting;
        private bool _deferred; // Registered with the loop to send at the end of its turn.
        private bool _writing; // Between GetMemory/GetSpan and the flush: the loop leaves the buffer alone meanwhile.

        private object Gate => connection._reader; // One monitor per connection, allocated only if contended.

        public override bool CanGetUnflushedBytes => true;

        /// <summary>The last send found the socket full, and no writable edge came since.</summary>
        private bool Full => _full && _fullAt == Volatile.Read(ref _edges);

        public override long UnflushedBytes => _written - _sent;

        public override void Advance(int bytes) => _written += bytes;

        public override Memory<byte> GetMemory(int sizeHint = 0) => Reserve(sizeHint).AsMemory(_written);

        public override Span<byte> GetSpan(int sizeHint = 0) => Reserve(sizeHint).AsSpan(_written);

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
        {
            lock (Gate)
            {
                _writing = false;
                if (_cancelNext)
                {
                    _cancelNext = false;
                    return new ValueTask<FlushResult>(new FlushResult(isCanceled: true, isCompleted: false));
                }

                if (!Full && _written - _sent is > 0 and <= DeferredSendLimit && !_failed && !connection._closed
                    && connection.Loop is { IsCurrentThread: true } loop)
                {
                    if (!_deferred)
                    {
                        _deferred = true;
                        loop.SendLater(connection);
                    }

                    return new ValueTask<FlushResult>(new FlushResult(isCanceled: false, isCompleted: false));
                }

                if (Send())
                {
                    return new ValueTask<FlushResult>(new FlushResult(isCanceled: false, isCompleted: _failed || connection._closed));
                }

                _waiting = true;

                // An edge that came since the send found the socket full saw no flush waiting and left it to this
                // one (OnWritable): try once more, now that _waiting is visible to the loop.
                Interlocked.MemoryBarrier();
                if (Send())
                {
                    _waiting = false;
                    return new ValueTask<FlushResult>(new FlushResult(isCanceled: false, isCompleted: _failed || connection._closed));
                }

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

        /// <summary>
        /// Sends what was written and not flushed, as far as the socket takes it now, without waiting (never blocking
        /// the thread that completes); what the socket has no room for is dropped, and so is everything once the
        /// connection has failed or closed. Then the buffer goes back to the pool.
        /// </summary>
        public override void Complete(Exception? exception = null)
        {
            lock (Gate)
            {
                _writing = false;
                _ = Send();
                _written = _sent = 0;
                Return(ref _buffer);
            }
        }

        /// <summary>
        /// The loop's writable edge. An edge comes with nearly every read (the peer's acknowledgement made room): unless
        /// the socket was full or a flush waits, what was flushed this turn stays for the end of the turn, and the edge
        /// takes no lock (as <see cref="SocketReader.OnReadable"/>: the event thread never waits for another thread).
        /// </summary>
        public void OnWritable()
        {
            Interlocked.Increment(ref _edges); // A full fence: the reads below see a _full or _waiting set before it.
            if (_full || _waiting)
            {
                SendWaiting();
            }
        }

        /// <summary>On the event thread, at the end of its turn: sends what flushes left for it.</summary>
        public void OnTurnEnd()
        {
            lock (Gate)
            {
                _deferred = false;
            }

            SendWaiting();
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

        /// <summary>
        /// Sends what was flushed and not yet sent (a waiting flush, or one that left its bytes for the end of the turn),
        /// unless the producer is writing again: its next flush sends them.
        /// </summary>
        private void SendWaiting()
        {
            lock (Gate)
            {
                if (_writing || !Send() || !_waiting)
                {
                    return;
                }

                _waiting = false;
            }

            _source.SetResult(new FlushResult(isCanceled: false, isCompleted: _failed));
        }

        private byte[] Reserve(int sizeHint)
        {
            if (!_writing)
            {
                // Under the lock: the loop may be sending from the buffer (what an earlier flush left for the end of
                // its turn), and leaves it alone from now until the flush.
                lock (Gate)
                {
                    _writing = true;
                }
            }

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
                int edges = Volatile.Read(ref _edges); // Read before the send: an edge after it means there is room.
                if (_full && _fullAt == edges)
                {
                    return false;
                }

                _full = false;
                int sent = NonBlocking.Send(connection.Socket, _buffer.AsSpan(_sent, _written - _sent), out SocketError error);
                if (error == SocketError.WouldBlock)
                {
                    _fullAt = edges;
                    _full = true;
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
