using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using static TinyServer.Interop.LibSsl;

namespace TinyServer.Server;

/// <summary>
/// One TLS session, OpenSSL's own (<see cref="TlsContext"/>), over the connection's transport pipes, and the pipes
/// the handler reads and writes in clear. OpenSSL reads ciphertext from one memory BIO and writes into another: the
/// transport's received bytes are copied into the first, and what OpenSSL writes (handshake messages, records,
/// alerts) is copied from the second into the transport's writer. No stream, no task per read: a read that finds a
/// record decrypts it at once, a flush is one <c>SSL_write</c> of everything written since the last (one record up
/// to 16 KiB) and one transport flush. Each way holds a pooled buffer only while it holds bytes, and OpenSSL frees
/// its record buffers between records, so an idle session holds only OpenSSL's session state.
/// <para>Not thread-safe, as a connection's pipes are not: the handler reads and writes in turn, and
/// <see cref="PipeReader.CancelPendingRead"/> (the idle timeout, shutdown) is the one call from another thread.</para>
/// </summary>
internal sealed class TlsSession : IDuplexPipe
{
    private const int BlockSize = 4096;
    private const int RecordHeaderType = 256; // SSL3_RT_HEADER: the message callback's view of a record's header
    private const byte HandshakeRecord = 0x16;

    private readonly IDuplexPipe _transport;
    private readonly nint _ssl;
    private readonly nint _received;
    private readonly nint _sent;
    private readonly Reader _input;
    private readonly Writer _output;
    private bool _freed;
    private bool _watching;

    private TlsSession(IDuplexPipe transport, nint ssl)
    {
        _transport = transport;
        _ssl = ssl;
        _received = NewMemoryBio();
        _sent = NewMemoryBio();
        SSL_set_bio(ssl, _received, _sent); // The session owns both from here.
        SSL_set_accept_state(ssl);
        _input = new Reader(this);
        _output = new Writer(this);
    }

    public PipeReader Input => _input;

    public PipeWriter Output => _output;

    /// <summary>Why a read failed (OpenSSL's reason), if one did; the session can send no close_notify after it.</summary>
    public IOException? ReadFailure => _input.Failure;

    /// <summary>The client asked to renegotiate (TLS 1.2): refused, and the session ended.</summary>
    public bool Renegotiation { get; private set; }

    /// <summary>A session of <paramref name="context"/> over <paramref name="transport"/>, its handshake not started.</summary>
    public static TlsSession Create(TlsContext context, IDuplexPipe transport)
    {
        nint ssl = context.NewSession();
        return ssl != 0 ? new TlsSession(transport, ssl) : throw new InvalidOperationException($"OpenSSL could not make a session: {LastError()}");
    }

    /// <summary>
    /// Runs the server's side of the handshake on <paramref name="threads"/>: a read of the client's next messages that
    /// has to wait resumes there, not on the event thread that completes it. Returns null once the handshake is
    /// complete, else why it failed.
    /// </summary>
    public async ValueTask<string?> HandshakeAsync(HandshakeThreads threads, CancellationToken cancellationToken)
    {
        PipeReader input = _transport.Input;
        while (true)
        {
            ERR_clear_error();
            int result = SSL_do_handshake(_ssl);
            int error = result == 1 ? 0 : SSL_get_error(_ssl, result);
            string? failure = error is 0 or WantRead ? null : LastError() ?? "the TLS handshake failed";
            if ((await SendAsync(cancellationToken)).IsCompleted)
            {
                return failure ?? "the connection closed during the TLS handshake";
            }

            if (failure is not null)
            {
                return failure;
            }

            if (result == 1)
            {
                if (SSL_version(_ssl) == Tls12)
                {
                    WatchForRenegotiation();
                }

                return null;
            }

            ValueTask<ReadResult> reading = input.ReadAsync(cancellationToken);
            bool waited = !reading.IsCompleted;
            ReadResult read = await reading.ConfigureAwait(false);
            if (waited)
            {
                await threads.Enter();
            }

            if (read.IsCanceled || (read.Buffer.IsEmpty && read.IsCompleted))
            {
                input.AdvanceTo(read.Buffer.End);
                return "the connection closed during the TLS handshake";
            }

            Receive(read.Buffer);
            input.AdvanceTo(read.Buffer.End);
        }
    }

    /// <summary>Sends close_notify, waiting at most <paramref name="timeout"/> for the transport to take it.</summary>
    public async Task CloseNotifyAsync(TimeSpan timeout, TimeProvider time)
    {
        ERR_clear_error();
        SSL_shutdown(_ssl);
        ERR_clear_error();
        ValueTask<FlushResult> sending = SendAsync(CancellationToken.None);
        if (sending.IsCompleted)
        {
            sending.GetAwaiter().GetResult();
            return;
        }

        // A peer that does not read may leave no room for the alert: wait a little, never for long.
        Task<FlushResult> flush = sending.AsTask();
        try
        {
            await flush.WaitAsync(timeout, time);
        }
        catch (TimeoutException)
        {
            _ = flush.ContinueWith(static t => t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
        }
    }

    /// <summary>The session is over: OpenSSL's session and both buffers are freed (what was not flushed is dropped).</summary>
    public void Complete()
    {
        _input.Complete();
        _output.Complete();
        if (!_freed)
        {
            _freed = true;
            SSL_free(_ssl); // And both BIOs.
        }
    }

    /// <summary>The transport's received ciphertext, all of it, into OpenSSL's input (a memory BIO takes everything).</summary>
    private void Receive(in ReadOnlySequence<byte> ciphertext)
    {
        foreach (ReadOnlyMemory<byte> segment in ciphertext)
        {
            if (!segment.IsEmpty)
            {
                BIO_write(_received, ref MemoryMarshal.GetReference(segment.Span), segment.Length);
            }
        }
    }

    /// <summary>What OpenSSL wrote into its output, moved into the transport's writer and flushed (nothing to flush if it wrote nothing).</summary>
    private ValueTask<FlushResult> SendAsync(CancellationToken cancellationToken)
    {
        nuint pending = BIO_ctrl_pending(_sent);
        if (pending == 0)
        {
            return new ValueTask<FlushResult>(default(FlushResult));
        }

        PipeWriter output = _transport.Output;
        while (pending > 0)
        {
            Span<byte> span = output.GetSpan((int)Math.Min(pending, 16 * 1024 + 512));
            int moved = BIO_read(_sent, ref MemoryMarshal.GetReference(span), span.Length);
            output.Advance(moved);
            pending -= (nuint)moved;
        }

        return output.FlushAsync(cancellationToken);
    }

    /// <summary>
    /// TLS 1.2 lets a client ask for a new handshake on the session (TLS 1.3 has none): OpenSSL refuses it with a
    /// warning alert and goes on. This server ends the session instead, as SslStream did, and counts it: a handshake
    /// record after the handshake is that request (the client's only handshake message in TLS 1.2 is its hello).
    /// </summary>
    private unsafe void WatchForRenegotiation()
    {
        _watching = true;
        SSL_set_msg_callback(_ssl, &OnMessage);
    }

    [UnmanagedCallersOnly]
    private static unsafe void OnMessage(int written, int version, int contentType, byte* buffer, nuint length, nint ssl, nint argument)
    {
        if (written == 0 && contentType == RecordHeaderType && length > 0 && buffer[0] == HandshakeRecord)
        {
            SSL_set_ex_data(ssl, 0, 1);
        }
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
    private sealed class Reader(TlsSession session) : PipeReader
    {
        private readonly PipeReader _transport = session._transport.Input;
        private byte[]? _buffer;
        private int _start;
        private int _end;
        private bool _examined = true;
        private bool _done;
        private bool _completed;
        private int _cancel;
        private int _waiting;

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

        /// <summary>The next read (or the one waiting) returns canceled: a flag, and the transport's read woken if one waits.</summary>
        public override void CancelPendingRead()
        {
            Interlocked.Exchange(ref _cancel, 1);
            if (Volatile.Read(ref _waiting) == 1)
            {
                _transport.CancelPendingRead();
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
                    await session.SendAsync(cancellationToken);

                    Interlocked.Exchange(ref _waiting, 1);
                    if (Interlocked.Exchange(ref _cancel, 0) == 1)
                    {
                        return new ReadResult(Buffer, isCanceled: true, isCompleted: false);
                    }

                    ReadResult read = await _transport.ReadAsync(cancellationToken);
                    Volatile.Write(ref _waiting, 0);
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
                Volatile.Write(ref _waiting, 0);
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
