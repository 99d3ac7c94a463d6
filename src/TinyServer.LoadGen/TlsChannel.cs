using System.Net.Security;
using System.Net.Sockets;
using System.Threading.Tasks.Sources;

namespace TinyServer.LoadGen;

/// <summary>
/// TLS for one connection of the event loop: an <see cref="SslStream"/> over this stream, whose bytes are the
/// connection's non-blocking socket. Nothing here blocks or waits on another thread:
/// <list type="bullet">
/// <item>A write of the <see cref="SslStream"/> (records, handshake messages) goes to the socket at once; what the
/// socket does not take waits in a buffer (<see cref="HasUnsent"/>) until the loop sees the socket writable
/// (<see cref="SendUnsent"/>).</item>
/// <item>A read of the <see cref="SslStream"/> takes what the last <c>recv</c> brought; when nothing is left it is
/// pending (a reusable <see cref="IValueTaskSource{TResult}"/>) until the loop sees the socket readable
/// (<see cref="OnReadable"/>): then one <c>recv</c> fills the buffer and the read completes inline, on the loop thread,
/// so the <see cref="SslStream"/> decrypts there and then. (The <see cref="SslStream"/> reads a record's first byte
/// alone: served from the buffer, that costs no system call and no loop turn.)</item>
/// </list>
/// The connection keeps one decrypted read outstanding (<see cref="ReadReady"/>, <see cref="TakeRead"/>) while it is
/// greeted or open, into its own receive buffer, so its framing, checks and timing are those of plain text.
/// One <see cref="SslStream"/> per session (the handshake allocates anyway); nothing is allocated per request.
/// </summary>
internal sealed class TlsChannel(SslClientAuthenticationOptions options, int capacity) : Stream, IValueTaskSource<int>
{
    private const byte HandshakeRecord = 22;
    private const byte ServerHelloMessage = 2;
    private const ushort PreSharedKeyExtension = 41;

    private readonly SslClientAuthenticationOptions _options = options;
    private const int ReceiveCapacity = 16 * 1024;

    private readonly byte[] _received = new byte[ReceiveCapacity];
    private byte[] _unsent = new byte[capacity];
    private int _receivedStart;
    private int _receivedLength;
    private SocketError _receiveError; // Success and _ended: the server closed.
    private bool _ended;
    private int _unsentStart;
    private int _unsentLength;
    private Socket? _socket;
    private SslStream? _ssl;
    private Task? _handshake;
    private ManualResetValueTaskSourceCore<int> _receive; // Continuations run inline: on the loop thread, in OnReadable.
    private Memory<byte> _receiveInto;
    private bool _receivePending;
    private ValueTask<int> _read;
    private bool _reading;
    private bool _serverHelloSeen;

    /// <summary>A send failed (reset, broken pipe): the connection is over.</summary>
    public bool Failed { get; private set; }

    /// <summary>Ciphertext the socket has not taken yet: the connection waits for the socket to be writable.</summary>
    public bool HasUnsent => _unsentLength > 0;

    /// <summary>The server accepted the session's ticket (a TLS 1.3 pre-shared key in its ServerHello): a resumed handshake.</summary>
    public bool Resumed { get; private set; }

    /// <summary>The handshake's outcome: null while it runs, "" when it succeeded, else why it failed (a connect error).</summary>
    public string? HandshakeOutcome => _handshake switch
    {
        null => null,
        { IsCompletedSuccessfully: true } => "",
        { IsCompleted: false } => null,
        { Exception.InnerException: { } e } => Describe(e),
        _ => "TLS handshake failed",
    };

    public override bool CanRead => true;

    public override bool CanWrite => true;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    /// <summary>Starts a session on a connected socket: the ClientHello goes out now, the rest as the socket allows.</summary>
    public void Start(Socket socket)
    {
        _socket = socket;
        _receivedStart = 0;
        _receivedLength = 0;
        _receiveError = SocketError.Success;
        _ended = false;
        _unsentStart = 0;
        _unsentLength = 0;
        Failed = false;
        Resumed = false;
        _serverHelloSeen = false;
        _ssl = new SslStream(this, leaveInnerStreamOpen: true);
        _handshake = _ssl.AuthenticateAsClientAsync(_options, CancellationToken.None);
    }

    /// <summary>The socket is readable: one receive into the pending read of the <see cref="SslStream"/>, which goes on inline.</summary>
    public void OnReadable()
    {
        if (!_receivePending || _receivedLength > 0 || _ended)
        {
            return;
        }

        int received = _socket!.Receive(_received, SocketFlags.None, out SocketError error);
        if (error == SocketError.WouldBlock)
        {
            return;
        }

        if (error != SocketError.Success || received == 0)
        {
            _ended = true;
            _receiveError = error;
        }
        else
        {
            _receivedStart = 0;
            _receivedLength = received;
            if (!_serverHelloSeen)
            {
                _serverHelloSeen = true;
                Resumed = OffersPreSharedKey(_received.AsSpan(0, received));
            }
        }

        _receivePending = false;
        if (_receiveError != SocketError.Success)
        {
            _receive.SetException(new IOException("the connection broke", new SocketException((int)_receiveError)));
        }
        else
        {
            _receive.SetResult(Take(_receiveInto.Span));
        }
    }

    /// <summary>Sends buffered ciphertext (the socket was writable).</summary>
    public void SendUnsent()
    {
        if (_unsentLength == 0 || Failed)
        {
            return;
        }

        int sent = _socket!.Send(_unsent.AsSpan(_unsentStart, _unsentLength), SocketFlags.None, out SocketError error);
        if (error is not (SocketError.Success or SocketError.WouldBlock))
        {
            Failed = true;
            return;
        }

        _unsentStart += sent;
        _unsentLength -= sent;
        if (_unsentLength == 0)
        {
            _unsentStart = 0;
        }
    }

    /// <summary>Encrypts <paramref name="plaintext"/> and sends it (or buffers what the socket does not take).</summary>
    public void Send(ReadOnlySpan<byte> plaintext)
    {
        if (plaintext.IsEmpty || Failed)
        {
            return;
        }

        try
        {
            _ssl!.Write(plaintext);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException)
        {
            Failed = true; // The session broke (an alert, a failed read before): the connection is over.
        }
    }

    /// <summary>
    /// Keeps a decrypted read outstanding into <paramref name="buffer"/> (starting one when none is); true when it has
    /// completed, for <see cref="TakeRead"/>. The buffer must stay where it is until then.
    /// </summary>
    public bool ReadReady(Memory<byte> buffer)
    {
        if (!_reading)
        {
            try
            {
                _read = _ssl!.ReadAsync(buffer, CancellationToken.None);
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException)
            {
                _read = ValueTask.FromException<int>(e);
            }

            _reading = true;
        }

        return _read.IsCompleted;
    }

    /// <summary>The completed read: bytes decrypted, 0 at the end of the stream (with Success), or an error.</summary>
    public int TakeRead(out SocketError error)
    {
        error = SocketError.Success;
        if (!_reading || !_read.IsCompleted)
        {
            error = SocketError.WouldBlock;
            return 0;
        }

        _reading = false;
        try
        {
            return _read.GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException or System.Security.Authentication.AuthenticationException)
        {
            error = e.InnerException is SocketException socket ? socket.SocketErrorCode : SocketError.ConnectionReset;
            return 0;
        }
    }

    /// <summary>Ends the session: a pending read ends (as at the end of the stream), the <see cref="SslStream"/> goes.</summary>
    public void Abort()
    {
        if (_receivePending)
        {
            _receivePending = false;
            _receive.SetResult(0);
        }

        if (_reading)
        {
            TakeRead(out _);
        }

        _reading = false;
        _ = _handshake?.Exception; // Observed: a failed handshake is reported through HandshakeOutcome.
        _handshake = null;
        _ssl?.Dispose();
        _ssl = null;
        _socket = null;
        _unsentLength = 0;
        _unsentStart = 0;
    }

    // Reads of the SslStream: from what the last receive brought, or pending until the loop sees the socket readable.
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_socket is null || _receivedLength > 0 || _ended)
        {
            return _receiveError == SocketError.Success
                ? new ValueTask<int>(Take(buffer.Span))
                : ValueTask.FromException<int>(new IOException("the connection broke", new SocketException((int)_receiveError)));
        }

        _receive.Reset();
        _receiveInto = buffer;
        _receivePending = true;
        return new ValueTask<int>(this, _receive.Version);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("reads complete on the event loop");

    // Writes of the SslStream: to the socket now, the rest buffered.
    public override void Write(ReadOnlySpan<byte> buffer)
    {
        if (Failed || _socket is null)
        {
            return;
        }

        if (_unsentLength == 0)
        {
            int sent = _socket.Send(buffer, SocketFlags.None, out SocketError error);
            if (error is not (SocketError.Success or SocketError.WouldBlock))
            {
                Failed = true;
                return;
            }

            buffer = buffer[(error == SocketError.WouldBlock ? 0 : sent)..];
        }

        if (buffer.IsEmpty)
        {
            return;
        }

        if (_unsentStart + _unsentLength + buffer.Length > _unsent.Length)
        {
            // Room at the front first; a bigger buffer only when the unsent bytes outgrow it (a large handshake flight).
            byte[] target = _unsentLength + buffer.Length > _unsent.Length ? new byte[Math.Max(2 * _unsent.Length, _unsentLength + buffer.Length)] : _unsent;
            _unsent.AsSpan(_unsentStart, _unsentLength).CopyTo(target);
            _unsent = target;
            _unsentStart = 0;
        }

        buffer.CopyTo(_unsent.AsSpan(_unsentStart + _unsentLength));
        _unsentLength += buffer.Length;
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Write(buffer.Span);
        return default;
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
    {
        Write(buffer.AsSpan(offset, count));
        return Task.CompletedTask;
    }

    public override void Flush()
    {
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    int IValueTaskSource<int>.GetResult(short token) => _receive.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<int>.GetStatus(short token) => _receive.GetStatus(token);

    void IValueTaskSource<int>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _receive.OnCompleted(continuation, state, token, flags);

    /// <summary>
    /// Whether the first record of the server's reply is a ServerHello with the pre_shared_key extension: the server
    /// accepted a ticket (TLS 1.3 resumption). False for anything else, including a ServerHello split over reads.
    /// </summary>
    internal static bool OffersPreSharedKey(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < 9 || bytes[0] != HandshakeRecord || bytes[5] != ServerHelloMessage)
        {
            return false;
        }

        int recordEnd = Math.Min(bytes.Length, 5 + ((bytes[3] << 8) | bytes[4]));
        int at = 9 + 2 + 32; // Record header, handshake header, legacy_version, random.
        at = at < recordEnd ? at + 1 + bytes[at] + 2 + 1 : recordEnd; // legacy_session_id, cipher_suite, legacy_compression_method.
        if (at + 2 > recordEnd)
        {
            return false;
        }

        int extensionsEnd = Math.Min(recordEnd, at + 2 + ((bytes[at] << 8) | bytes[at + 1]));
        at += 2;
        while (at + 4 <= extensionsEnd)
        {
            if (((bytes[at] << 8) | bytes[at + 1]) == PreSharedKeyExtension)
            {
                return true;
            }

            at += 4 + ((bytes[at + 2] << 8) | bytes[at + 3]);
        }

        return false;
    }

    // Received bytes into a read of the SslStream (none for a zero-byte read, which only waits for data).
    private int Take(Span<byte> into)
    {
        int count = Math.Min(into.Length, _receivedLength);
        _received.AsSpan(_receivedStart, count).CopyTo(into);
        _receivedStart += count;
        _receivedLength -= count;
        return count;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            Abort();
        }

        base.Dispose(disposing);
    }

    private static string Describe(Exception e) => e switch
    {
        System.Security.Authentication.AuthenticationException => $"TLS handshake failed: {e.Message.TrimEnd('.')}",
        _ when e.InnerException is SocketException socket => ErrorCounts.Describe(socket.SocketErrorCode),
        _ => $"TLS handshake failed: {e.Message.TrimEnd('.')}",
    };
}
