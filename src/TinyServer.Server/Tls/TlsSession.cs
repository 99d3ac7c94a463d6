using System.Buffers;
using System.IO.Pipelines;
using System.Net.Security;
using System.Runtime.CompilerServices;

namespace TinyServer.Server;

/// <summary>
/// A TLS session's pipes as the handler sees them, straight over the <see cref="SslStream"/> that Kestrel's
/// <c>UseHttps</c> authenticated, in place of its stream-backed pipes (segments from a memory pool, and a second
/// pass through the SslStream for every read). Each way holds one contiguous buffer from the shared array pool, and
/// only while it holds bytes, so an idle session holds none:
/// <list type="bullet">
/// <item>A read with nothing buffered first waits with a zero-byte read (SslStream then holds no buffer either), then
/// reads the records that arrived, decrypted in place of the buffer's free space.</item>
/// <item>A flush is one <see cref="SslStream.WriteAsync(ReadOnlyMemory{byte}, CancellationToken)"/> of everything
/// written since the last: one TLS record (up to 16 KiB of replies) and one send.</item>
/// </list>
/// It keeps the IOException that failed a read (SslStream's, e.g. a renegotiation refused), for the close.
/// </summary>
internal sealed class TlsSession(SslStream ssl) : IDuplexPipe
{
    private const int BlockSize = 4096;

    private readonly Reader _input = new(ssl);
    private readonly Writer _output = new(ssl);

    public PipeReader Input => _input;

    public PipeWriter Output => _output;

    /// <summary>The IOException a read threw, if one did.</summary>
    public IOException? ReadFailure => _input.Failure;

    /// <summary>The session is over: both buffers go back to the pool (what was not flushed is dropped).</summary>
    public void Complete()
    {
        _input.Complete();
        _output.Complete();
    }

    private static void Return(ref byte[]? buffer)
    {
        if (buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            buffer = null;
        }
    }

    /// <summary>Decrypted bytes in [start, end) of one rented buffer; <c>examined</c> says the handler wants more.</summary>
    private sealed class Reader(SslStream ssl) : PipeReader
    {
        private byte[]? _buffer;
        private int _start;
        private int _end;
        private bool _examined = true;
        private bool _done;
        private bool _completed;

        // Canceled by CancelPendingRead: ends a waiting read (a new one replaces it, rarely: idle timeout, shutdown).
        private CancellationTokenSource _cancel = new();

        public IOException? Failure { get; private set; }

        private ReadOnlySequence<byte> Buffer => _buffer is null ? default : new ReadOnlySequence<byte>(_buffer, _start, _end - _start);

        public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
        {
            ObjectDisposedException.ThrowIf(_completed, this);
            if (TryTake(out ReadResult result))
            {
                return new ValueTask<ReadResult>(result);
            }

            return ReadMoreAsync(cancellationToken);
        }

        public override bool TryRead(out ReadResult result)
        {
            ObjectDisposedException.ThrowIf(_completed, this);
            return TryTake(out result);
        }

        public override void AdvanceTo(SequencePosition consumed) => AdvanceTo(consumed, consumed);

        public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
        {
            if (_buffer is null || consumed.GetObject() is null)
            {
                return;
            }

            _start = consumed.GetInteger();
            _examined = examined.GetInteger() >= _end;
            if (_start == _end)
            {
                _start = _end = 0;
                _examined = true;
                Return(ref _buffer); // An idle session holds no buffer.
            }
        }

        public override void CancelPendingRead() => Volatile.Read(ref _cancel).Cancel();

        public override void Complete(Exception? exception = null)
        {
            _completed = true;
            _start = _end = 0;
            Return(ref _buffer);
        }

        private bool TryTake(out ReadResult result)
        {
            if (_cancel.IsCancellationRequested)
            {
                Volatile.Write(ref _cancel, new CancellationTokenSource());
                result = new ReadResult(Buffer, isCanceled: true, isCompleted: false);
                return true;
            }

            if ((_end > _start && !_examined) || _done)
            {
                result = new ReadResult(Buffer, isCanceled: false, isCompleted: _done);
                return true;
            }

            result = default;
            return false;
        }

        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
        private async ValueTask<ReadResult> ReadMoreAsync(CancellationToken cancellationToken)
        {
            CancellationTokenSource cancel = _cancel;
            CancellationTokenSource? linked = cancellationToken.CanBeCanceled ? CancellationTokenSource.CreateLinkedTokenSource(cancel.Token, cancellationToken) : null;
            CancellationToken token = linked?.Token ?? cancel.Token;
            try
            {
                if (_end == _start)
                {
                    // Waits for the next record holding no buffer; SslStream holds none meanwhile either.
                    await ssl.ReadAsync(Memory<byte>.Empty, token).ConfigureAwait(false);
                }

                Reserve();
                int read = await ssl.ReadAsync(_buffer.AsMemory(_end), token).ConfigureAwait(false);
                if (read == 0)
                {
                    _done = true;
                }
                else
                {
                    _end += read;
                    _examined = false;
                }

                return new ReadResult(Buffer, isCanceled: false, isCompleted: _done);
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested)
            {
                Volatile.Write(ref _cancel, new CancellationTokenSource());
                return new ReadResult(Buffer, isCanceled: true, isCompleted: false);
            }
            catch (IOException e)
            {
                Failure = e;
                throw;
            }
            finally
            {
                linked?.Dispose();
                if (_end == _start)
                {
                    _start = _end = 0;
                    Return(ref _buffer);
                }
            }
        }

        /// <summary>Room after <c>end</c>: a block, the unconsumed bytes moved to the front, or a buffer twice as large.</summary>
        private void Reserve()
        {
            if (_buffer is null)
            {
                _buffer = ArrayPool<byte>.Shared.Rent(BlockSize);
            }
            else if (_end == _buffer.Length)
            {
                if (_start > 0)
                {
                    _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
                    _end -= _start;
                    _start = 0;
                }
                else
                {
                    byte[] larger = ArrayPool<byte>.Shared.Rent(_buffer.Length * 2);
                    _buffer.AsSpan(0, _end).CopyTo(larger);
                    Return(ref _buffer);
                    _buffer = larger;
                }
            }
        }
    }

    /// <summary>Replies in one rented buffer until the flush encrypts and writes them all at once.</summary>
    private sealed class Writer(SslStream ssl) : PipeWriter
    {
        private byte[]? _buffer;
        private int _written;
        private bool _cancelNext;

        public override bool CanGetUnflushedBytes => true;

        public override long UnflushedBytes => _written;

        public override void Advance(int bytes) => _written += bytes;

        public override Memory<byte> GetMemory(int sizeHint = 0) => Reserve(sizeHint).AsMemory(_written);

        public override Span<byte> GetSpan(int sizeHint = 0) => Reserve(sizeHint).AsSpan(_written);

        /// <summary>A flush under way is not interrupted (that would cut a record); the next one returns canceled, writing nothing.</summary>
        public override void CancelPendingFlush() => _cancelNext = true;

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
        {
            if (_cancelNext)
            {
                _cancelNext = false;
                return new ValueTask<FlushResult>(new FlushResult(isCanceled: true, isCompleted: false));
            }

            if (_written == 0)
            {
                return new ValueTask<FlushResult>(default(FlushResult));
            }

            ValueTask write = ssl.WriteAsync(_buffer.AsMemory(0, _written), cancellationToken);
            if (!write.IsCompletedSuccessfully)
            {
                return AwaitWriteAsync(write);
            }

            write.GetAwaiter().GetResult();
            Written();
            return new ValueTask<FlushResult>(default(FlushResult));
        }

        public override void Complete(Exception? exception = null)
        {
            _written = 0;
            Return(ref _buffer);
        }

        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
        private async ValueTask<FlushResult> AwaitWriteAsync(ValueTask write)
        {
            try
            {
                await write.ConfigureAwait(false);
            }
            finally
            {
                Written();
            }

            return default;
        }

        private void Written()
        {
            _written = 0;
            Return(ref _buffer); // An idle session holds no buffer.
        }

        private byte[] Reserve(int sizeHint)
        {
            int needed = Math.Max(sizeHint, 1);
            if (_buffer is null)
            {
                _buffer = ArrayPool<byte>.Shared.Rent(Math.Max(BlockSize, needed));
            }
            else if (_buffer.Length - _written < needed)
            {
                byte[] larger = ArrayPool<byte>.Shared.Rent(Math.Max(_buffer.Length * 2, _written + needed));
                _buffer.AsSpan(0, _written).CopyTo(larger);
                Return(ref _buffer);
                _buffer = larger;
            }

            return _buffer;
        }
    }
}
