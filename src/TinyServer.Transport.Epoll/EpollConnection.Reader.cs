using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Threading.Tasks.Sources;
using TinyServer.Interop;

namespace TinyServer.Transport.Epoll;

internal sealed partial class EpollConnection
{
    /// <summary>Receives into one contiguous rented buffer: [start, end) is unconsumed, [start, examined) was seen.</summary>
    private sealed class SocketReader(EpollConnection connection, int maxBuffer) : PipeReader, IValueTaskSource<ReadResult>
    {
        private ManualResetValueTaskSourceCore<ReadResult> _source;
        private byte[]? _buffer;
        private int _start;
        private int _end;
        private int _examined;
        // Whether the socket may hold data, without the lock on the event thread's side: the loop counts the readable
        // edges (_edges), and a receive that drained the socket records the count it read before it (_drainedAt). The
        // socket is readable again once another edge has come. Data may have arrived before the first read.
        private int _edges;
        private int _drainedAt = -1;
        private volatile bool _hangUp; // The peer closed or the socket failed: no further edge will come, read until the end.
        private bool _peerDone;
        private Exception? _error;
        private bool _cancelNext;
        private volatile bool _waiting;
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
                bool giveWay = _receivesInARow >= ReceivesPerTurn && _end == _examined && Readable && !_cancelNext
                    && connection.Loop is { IsCurrentThread: true };
                if (!giveWay && TryTake(out ReadResult result))
                {
                    return new ValueTask<ReadResult>(result);
                }

                _receivesInARow = 0;
                _waiting = true;
                if (!giveWay)
                {
                    // An edge that came since the receive found the socket drained saw no read waiting and left it
                    // to this one (OnReadable): look once more, now that _waiting is visible to the loop.
                    Interlocked.MemoryBarrier();
                    bool taken;
                    try
                    {
                        taken = TryTake(out result);
                    }
                    catch
                    {
                        _waiting = false; // The receive failed: this read throws, nothing waits.
                        throw;
                    }

                    if (taken)
                    {
                        _waiting = false;
                        return new ValueTask<ReadResult>(result);
                    }
                }

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

        /// <summary>
        /// The loop's readable edge. Without the lock unless a read waits: the lock may be held by a thread that the
        /// scheduler put aside (a TLS handshake thread at idle priority, caught as its send woke the peer), and the
        /// event thread must never wait for it with the other connections' events in hand.
        /// </summary>
        public void OnReadable(bool hangUp)
        {
            if (hangUp)
            {
                _hangUp = true;
            }

            Interlocked.Increment(ref _edges); // A full fence: the read below sees a _waiting set before it.
            if (_waiting)
            {
                OnTurn();
            }
        }

        /// <summary>The loop's turn for a waiting read (an edge, or a read that gave way): completes it if data is there.</summary>
        public void OnTurn()
        {
            ReadResult result;
            Exception? error = null;
            lock (Gate)
            {
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

        private bool Readable => _drainedAt != Volatile.Read(ref _edges);

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

            if (_end == _examined && !_peerDone && _error is null && Readable && !connection._closed)
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
            int edges = Volatile.Read(ref _edges); // Read before the receive: an edge after it means more may be there.
            int received = NonBlocking.Receive(connection.Socket, space, out SocketError error);
            if (error == SocketError.WouldBlock)
            {
                _drainedAt = edges; // The next edge says when there is more.
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
                if (received < space.Length && !_hangUp)
                {
                    _drainedAt = edges;
                }
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
}
