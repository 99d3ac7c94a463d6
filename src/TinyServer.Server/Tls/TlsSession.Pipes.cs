using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using static TinyServer.Interop.LibSsl;

namespace TinyServer.Server;

/// <summary>The pipes the handler reads and writes in clear: <see cref="TlsSession"/>'s reader and writer.</summary>
internal sealed partial class TlsSession
{
    /// <summary>Decrypted bytes in [start, end) of one rented buffer; <c>examined</c> says the handler wants more.</summary>
    private sealed class Reader(TlsSession session) : PipeReader
    {
        private const int NotWaiting = 0;
        private const int WaitingForInput = 1;
        private const int WaitingForOutput = 2;

        private readonly PipeReader _transport = session._transport.Input;
        private byte[]? _buffer;
        private int _start;
        private int _end;
        private bool _examined = true;
        private bool _done;
        private bool _completed;
        private int _cancel;
        private int _waiting; // NotWaiting, WaitingForInput or WaitingForOutput

        public IOException? Failure { get; private set; }

        private ReadOnlySequence<byte> Buffer => _buffer is null ? default : new ReadOnlySequence<byte>(_buffer, _start, _end - _start);

        public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
        {
            ObjectDisposedException.ThrowIf(_completed, this);
            return TryTake(out ReadResult result) ? new ValueTask<ReadResult>(result) : ReadMoreAsync(cancellationToken);
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

        /// <summary>
        /// The next read (or the one waiting) returns canceled: a flag, and what the read waits for woken: the transport's
        /// read, or the flush of a reply OpenSSL wrote while reading (the idle timeout must reach a peer that floods
        /// KeyUpdate requests and reads nothing).
        /// </summary>
        public override void CancelPendingRead()
        {
            Interlocked.Exchange(ref _cancel, 1);
            switch (Volatile.Read(ref _waiting))
            {
                case WaitingForInput:
                    _transport.CancelPendingRead();
                    break;
                case WaitingForOutput:
                    session._transport.Output.CancelPendingFlush();
                    break;
            }
        }

        public override void Complete(Exception? exception = null)
        {
            _completed = true;
            _start = _end = 0;
            Return(ref _buffer);
        }

        private bool TryTake(out ReadResult result)
        {
            if (Interlocked.Exchange(ref _cancel, 0) == 1)
            {
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
            try
            {
                while (true)
                {
                    if (Decrypt() || _done)
                    {
                        return new ReadResult(Buffer, isCanceled: false, isCompleted: _done);
                    }

                    // A post-handshake message (a TLS 1.3 KeyUpdate) may have a reply: it goes before the wait.
                    if (session.HasOutput)
                    {
                        Interlocked.Exchange(ref _waiting, WaitingForOutput);
                        if (Interlocked.Exchange(ref _cancel, 0) == 1)
                        {
                            return new ReadResult(Buffer, isCanceled: true, isCompleted: false); // The reply goes with the next flush.
                        }

                        FlushResult sent = await session.SendAsync(cancellationToken);
                        Volatile.Write(ref _waiting, NotWaiting);
                        if (sent.IsCanceled && Interlocked.Exchange(ref _cancel, 0) == 1)
                        {
                            return new ReadResult(Buffer, isCanceled: true, isCompleted: false);
                        }
                    }

                    Interlocked.Exchange(ref _waiting, WaitingForInput);
                    if (Interlocked.Exchange(ref _cancel, 0) == 1)
                    {
                        return new ReadResult(Buffer, isCanceled: true, isCompleted: false);
                    }

                    ReadResult read = await _transport.ReadAsync(cancellationToken);
                    Volatile.Write(ref _waiting, NotWaiting);
                    if (read.IsCanceled)
                    {
                        _transport.AdvanceTo(read.Buffer.Start);
                        if (Interlocked.Exchange(ref _cancel, 0) == 1)
                        {
                            return new ReadResult(Buffer, isCanceled: true, isCompleted: false);
                        }

                        continue; // Canceled for a read that took its flag already.
                    }

                    session.Receive(read.Buffer);
                    _transport.AdvanceTo(read.Buffer.End);
                    if (read.IsCompleted && read.Buffer.IsEmpty)
                    {
                        _done = true; // The transport ended: what is left of a record is not a record.
                    }
                }
            }
            finally
            {
                Volatile.Write(ref _waiting, NotWaiting);
                if (_end == _start)
                {
                    _start = _end = 0;
                    Return(ref _buffer);
                }
            }
        }

        /// <summary>Decrypts what OpenSSL's input holds into the buffer: true if that gave bytes, false if it needs more.</summary>
        private bool Decrypt()
        {
            if (_end == _start && BIO_ctrl_pending(session._received) == 0 && SSL_pending(session._ssl) == 0)
            {
                return false; // Nothing to decrypt: no buffer rented, no call into OpenSSL.
            }

            Reserve();
            ERR_clear_error();
            int read = SSL_read(session._ssl, ref _buffer![_end], _buffer.Length - _end);
            if (session._watching && SSL_get_ex_data(session._ssl, 0) != 0)
            {
                session.Renegotiation = true;
                throw Failure = new IOException("renegotiation refused");
            }

            if (read > 0)
            {
                _end += read;
                _examined = false;
                return true;
            }

            switch (SSL_get_error(session._ssl, read))
            {
                case WantRead:
                    return false;
                case ZeroReturn:
                    _done = true; // close_notify.
                    return false;
                default:
                    throw Failure = new IOException($"TLS: {LastError() ?? "the session failed"}");
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

    /// <summary>Replies in one rented buffer until the flush encrypts them all at once and hands them to the transport.</summary>
    private sealed class Writer(TlsSession session) : PipeWriter
    {
        private byte[]? _buffer;
        private int _written;
        private bool _cancelNext;

        public override bool CanGetUnflushedBytes => true;

        public override long UnflushedBytes => _written;

        public override void Advance(int bytes) => _written += bytes;

        public override Memory<byte> GetMemory(int sizeHint = 0) => Reserve(sizeHint).AsMemory(_written);

        public override Span<byte> GetSpan(int sizeHint = 0) => Reserve(sizeHint).AsSpan(_written);

        /// <summary>The next flush returns canceled, writing nothing (a flush under way is the transport's).</summary>
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

            ERR_clear_error();
            int written = SSL_write(session._ssl, ref _buffer![0], _written);
            _written = 0;
            Return(ref _buffer); // An idle session holds no buffer.
            if (written <= 0)
            {
                throw new IOException($"TLS: {LastError() ?? "the session failed"}");
            }

            return session.SendAsync(cancellationToken);
        }

        public override void Complete(Exception? exception = null)
        {
            _written = 0;
            Return(ref _buffer);
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
