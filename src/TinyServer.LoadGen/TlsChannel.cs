using System.Net.Sockets;
using System.Runtime.InteropServices;
using static TinyServer.Interop.LibSsl;

namespace TinyServer.LoadGen;

/// <summary>
/// TLS for one connection of the event loop, as the C reference speaks it: an OpenSSL session on the connection's
/// non-blocking socket (<see cref="OpenSsl"/>). The handshake goes a step each time the socket is ready
/// (<see cref="OnReadable"/>, <see cref="OnWritable"/>); then <c>SSL_read</c> decrypts straight into the connection's
/// receive buffer (<see cref="ReadReady"/>, <see cref="TakeRead"/>), until it would block, and <c>SSL_write</c> takes
/// requests from its send buffer as a socket send does (what it does not take stays there until the socket is
/// writable), so the framing, checks and timing are those of plain text. Nothing is allocated per request.
/// </summary>
internal sealed class TlsChannel(OpenSsl openSsl)
{
    private nint _ssl;
    private bool _handshaking;
    private bool _handshakeWantsWrite;
    private string? _failure;
    private bool _readDone;
    private int _read;
    private SocketError _readError;

    /// <summary>A send failed (reset, broken pipe, an alert): the connection is over.</summary>
    public bool Failed { get; private set; }

    /// <summary>The handshake waits for the socket to be writable.</summary>
    public bool WaitsForWritable => _handshaking && _handshakeWantsWrite;

    /// <summary>The server resumed the session offered (--tls-resume): a resumed handshake.</summary>
    public bool Resumed { get; private set; }

    /// <summary>The handshake's outcome: null while it runs, "" when it succeeded, else why it failed (a connect error).</summary>
    public string? HandshakeOutcome => _failure ?? (_handshaking ? null : "");

    /// <summary>Starts a session on a connected socket: the ClientHello goes out now, the rest as the socket allows.</summary>
    public void Start(Socket socket)
    {
        Abort();
        Failed = false;
        Resumed = false;
        _failure = null;
        _ssl = openSsl.NewSession((int)socket.SafeHandle.DangerousGetHandle());
        _handshaking = true;
        if (_ssl == 0)
        {
            _failure = "TLS handshake failed: SSL_new failed";
            return;
        }

        Handshake();
    }

    /// <summary>The socket is readable: the handshake's next step (afterwards reads are made by <see cref="ReadReady"/>).</summary>
    public void OnReadable() => Handshake();

    /// <summary>The socket is writable: the handshake's next step.</summary>
    public void OnWritable() => Handshake();

    /// <summary>
    /// Encrypts what <c>SSL_write</c> takes of <paramref name="plaintext"/> and sends it: the bytes taken (a record's
    /// worth or all), 0 with <see cref="SocketError.WouldBlock"/> when the socket is full (the same bytes go again when
    /// it is writable), or an error.
    /// </summary>
    public int Send(ReadOnlySpan<byte> plaintext, out SocketError error)
    {
        error = SocketError.Success;
        if (plaintext.IsEmpty)
        {
            return 0;
        }

        if (Failed || _ssl == 0 || _handshaking)
        {
            error = SocketError.ConnectionReset;
            return 0;
        }

        int result = SSL_write(_ssl, ref MemoryMarshal.GetReference(plaintext), plaintext.Length);
        if (result > 0)
        {
            return result;
        }

        if (SSL_get_error(_ssl, result) is WantWrite or WantRead)
        {
            error = SocketError.WouldBlock;
            return 0;
        }

        ERR_clear_error();
        Failed = true;
        error = SocketError.ConnectionReset;
        return 0;
    }

    /// <summary>
    /// Decrypts into <paramref name="buffer"/> what has come (an <c>SSL_read</c>): true when it brought bytes, the end of
    /// the stream or an error, for <see cref="TakeRead"/>; false when it would block (nothing to do until readable).
    /// </summary>
    public bool ReadReady(Span<byte> buffer)
    {
        if (_readDone)
        {
            return true;
        }

        if (_ssl == 0 || _handshaking || _failure is not null)
        {
            return false;
        }

        int result = SSL_read(_ssl, ref MemoryMarshal.GetReference(buffer), buffer.Length);
        _read = Math.Max(result, 0);
        _readError = SocketError.Success;
        if (result <= 0)
        {
            int error = SSL_get_error(_ssl, result);
            if (error is WantRead or WantWrite)
            {
                return false;
            }

            // The end of the stream (close_notify, or none: SSL_OP_IGNORE_UNEXPECTED_EOF), or a reset or bad record.
            int errno = Marshal.GetLastPInvokeError();
            _readError = error == ZeroReturn ? SocketError.Success
                : error == ErrorSyscall && errno == 0 ? SocketError.Success
                : SocketError.ConnectionReset;
            ERR_clear_error();
        }

        _readDone = true;
        return true;
    }

    /// <summary>The read <see cref="ReadReady"/> made: bytes decrypted, 0 at the end of the stream (with Success), or an error.</summary>
    public int TakeRead(out SocketError error)
    {
        if (!_readDone)
        {
            error = SocketError.WouldBlock;
            return 0;
        }

        _readDone = false;
        error = _readError;
        return _read;
    }

    /// <summary>Ends the session (with --tls-resume keeping it for the next handshake).</summary>
    public void Abort()
    {
        if (_ssl != 0)
        {
            openSsl.Free(_ssl, handshaken: !_handshaking && _failure is null);
            _ssl = 0;
        }

        _handshaking = false;
        _handshakeWantsWrite = false;
        _readDone = false;
    }

    private void Handshake()
    {
        if (!_handshaking || _failure is not null)
        {
            return;
        }

        int result = SSL_do_handshake(_ssl);
        if (result == 1)
        {
            _handshaking = false;
            _handshakeWantsWrite = false;
            Resumed = SSL_session_reused(_ssl) == 1;
            return;
        }

        int error = SSL_get_error(_ssl, result);
        int errno = Marshal.GetLastPInvokeError();
        _handshakeWantsWrite = error == WantWrite;
        if (error is not (WantRead or WantWrite))
        {
            string? reason = OpenSsl.Failure(_ssl);
            _failure = reason is not null ? $"TLS handshake failed: {reason}"
                : errno != 0 ? ErrorCounts.Describe(errno is 104 or 32 ? SocketError.ConnectionReset : SocketError.SocketError)
                : "TLS handshake failed: the server closed the connection";
        }
    }
}
