using System.Buffers;
using System.IO.Pipelines;
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
internal sealed partial class TlsSession : IDuplexPipe
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

    /// <summary>OpenSSL wrote something (a record, an alert, a post-handshake message) that is not sent yet.</summary>
    private bool HasOutput => BIO_ctrl_pending(_sent) != 0;

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
            if (moved <= 0)
            {
                break; // Cannot happen with bytes pending; never advance by a failure.
            }

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
}
