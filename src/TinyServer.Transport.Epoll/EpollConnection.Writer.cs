using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Threading.Tasks.Sources;
using TinyServer.Interop;

namespace TinyServer.Transport.Epoll;

internal sealed partial class EpollConnection
{
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

        /// <summary>
        /// Sends what was written and not flushed, as far as the socket takes it now, without waiting (never blocking
        /// the thread that completes); what the socket has no room for is dropped, and so is everything once the
        /// connection has failed or closed. Then the buffer goes back to the pool.
        /// </summary>
        public override void Complete(Exception? exception = null)
        {
            lock (Gate)
            {
                _ = Send();
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
