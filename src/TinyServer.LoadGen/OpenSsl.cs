using System.Net;
using System.Runtime.InteropServices;
using System.Text;

namespace TinyServer.LoadGen;

/// <summary>
/// The calls of OpenSSL 3 (libssl.so.3, libcrypto.so.3: what .NET's own TLS uses on Linux) that the load generator's
/// TLS makes, and the run's one <c>SSL_CTX</c>: TLS 1.2 or 1.3, the certificate checked against the system's roots
/// and --host unless --insecure, partial writes, an end of stream without close_notify read as an end (as
/// <c>SslStream</c> does), and with --tls-resume the last session kept and offered by the next handshake.
/// </summary>
internal sealed partial class OpenSsl : IDisposable
{
    public const int WantRead = 2;
    public const int WantWrite = 3;
    public const int ErrorSyscall = 5;
    public const int ZeroReturn = 6;

    private const string Ssl = "libssl.so.3";
    private const string Crypto = "libcrypto.so.3";
    private const int CtrlMode = 33;
    private const int CtrlSessionCacheMode = 44;
    private const int CtrlHostName = 55;
    private const int CtrlMinProtocol = 123;
    private const nint PartialWrites = 1 | 2; // SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
    private const ulong IgnoreUnexpectedEof = 1UL << 7;

    private readonly nint _context;
    private readonly string _host;
    private readonly bool _hostIsAddress;
    private readonly bool _verify;
    private readonly bool _resume;
    private nint _session;

    public OpenSsl(string host, bool insecure, bool resume)
    {
        _host = host;
        _hostIsAddress = IPAddress.TryParse(host, out _);
        _verify = !insecure;
        _resume = resume;
        _context = SSL_CTX_new(TLS_client_method());
        if (_context == 0)
        {
            throw new InvalidOperationException($"OpenSSL: {LastError() ?? "SSL_CTX_new failed"}");
        }

        SSL_CTX_ctrl(_context, CtrlMinProtocol, 0x0303, 0); // TLS 1.2
        SSL_CTX_ctrl(_context, CtrlMode, PartialWrites, 0);
        SSL_CTX_ctrl(_context, CtrlSessionCacheMode, resume ? 1 : 0, 0); // SSL_SESS_CACHE_CLIENT or OFF
        SSL_CTX_set_options(_context, IgnoreUnexpectedEof);
        SSL_CTX_set_verify(_context, _verify ? 1 : 0, 0);
        if (_verify)
        {
            SSL_CTX_set_default_verify_paths(_context);
        }
    }

    /// <summary>A client session on a connected socket, its handshake not started (with --tls-resume, offering the kept session).</summary>
    public nint NewSession(int fd)
    {
        nint ssl = SSL_new(_context);
        if (ssl == 0)
        {
            return 0;
        }

        SSL_set_fd(ssl, fd);
        if (!_hostIsAddress)
        {
            SSL_ctrl(ssl, CtrlHostName, 0, _host); // SNI
        }

        if (_verify)
        {
            _ = _hostIsAddress ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), _host) : SSL_set1_host(ssl, _host);
        }

        if (_session != 0)
        {
            SSL_set_session(ssl, _session);
        }

        SSL_set_connect_state(ssl);
        return ssl;
    }

    /// <summary>Frees a session; with --tls-resume, after a handshake, keeps what it can resume (a TLS 1.3 ticket) for the next one.</summary>
    public void Free(nint ssl, bool handshaken)
    {
        if (_resume && handshaken && SSL_get1_session(ssl) is var session and not 0)
        {
            if (SSL_SESSION_is_resumable(session) == 1)
            {
                (session, _session) = (_session, session);
                SSL_set_shutdown(ssl, 1); // As if close_notify had gone: else SSL_free makes the session unresumable.
            }

            if (session != 0)
            {
                SSL_SESSION_free(session);
            }
        }

        SSL_free(ssl);
    }

    /// <summary>Why the handshake of <paramref name="ssl"/> failed: the certificate check, else OpenSSL's first queued error (the queue is emptied).</summary>
    public static string? Failure(nint ssl)
    {
        nint verify = SSL_get_verify_result(ssl);
        string? reason = verify != 0 ? Marshal.PtrToStringUTF8(X509_verify_cert_error_string(verify)) : LastError();
        ERR_clear_error();
        return reason;
    }

    public void Dispose()
    {
        if (_session != 0)
        {
            SSL_SESSION_free(_session);
            _session = 0;
        }

        SSL_CTX_free(_context);
    }

    private static string? LastError()
    {
        ulong error = ERR_get_error();
        if (error == 0)
        {
            return null;
        }

        var text = new byte[256];
        ERR_error_string_n(error, ref text[0], (nuint)text.Length);
        string all = Encoding.UTF8.GetString(text, 0, Math.Max(0, Array.IndexOf(text, (byte)0)));
        return all[(all.LastIndexOf(':') + 1)..]; // "error:0A000086:SSL routines::certificate verify failed"
    }

    [LibraryImport(Ssl, SetLastError = true)]
    public static partial int SSL_do_handshake(nint ssl);

    [LibraryImport(Ssl, SetLastError = true)]
    public static partial int SSL_read(nint ssl, ref byte buffer, int count);

    [LibraryImport(Ssl, SetLastError = true)]
    public static partial int SSL_write(nint ssl, ref byte buffer, int count);

    [LibraryImport(Ssl)]
    public static partial int SSL_get_error(nint ssl, int result);

    [LibraryImport(Ssl)]
    public static partial int SSL_session_reused(nint ssl);

    [LibraryImport(Crypto)]
    public static partial void ERR_clear_error();

    [LibraryImport(Ssl)]
    private static partial nint TLS_client_method();

    [LibraryImport(Ssl)]
    private static partial nint SSL_CTX_new(nint method);

    [LibraryImport(Ssl)]
    private static partial void SSL_CTX_free(nint context);

    [LibraryImport(Ssl)]
    private static partial nint SSL_CTX_ctrl(nint context, int command, nint argument, nint pointer);

    [LibraryImport(Ssl)]
    private static partial ulong SSL_CTX_set_options(nint context, ulong options);

    [LibraryImport(Ssl)]
    private static partial void SSL_CTX_set_verify(nint context, int mode, nint callback);

    [LibraryImport(Ssl)]
    private static partial int SSL_CTX_set_default_verify_paths(nint context);

    [LibraryImport(Ssl)]
    private static partial nint SSL_new(nint context);

    [LibraryImport(Ssl)]
    private static partial void SSL_free(nint ssl);

    [LibraryImport(Ssl)]
    private static partial int SSL_set_fd(nint ssl, int fd);

    [LibraryImport(Ssl)]
    private static partial void SSL_set_connect_state(nint ssl);

    [LibraryImport(Ssl, StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint SSL_ctrl(nint ssl, int command, nint argument, string pointer);

    [LibraryImport(Ssl, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SSL_set1_host(nint ssl, string host);

    [LibraryImport(Ssl)]
    private static partial nint SSL_get0_param(nint ssl);

    [LibraryImport(Crypto, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int X509_VERIFY_PARAM_set1_ip_asc(nint parameters, string address);

    [LibraryImport(Ssl)]
    private static partial nint SSL_get1_session(nint ssl);

    [LibraryImport(Ssl)]
    private static partial int SSL_set_session(nint ssl, nint session);

    [LibraryImport(Ssl)]
    private static partial int SSL_SESSION_is_resumable(nint session);

    [LibraryImport(Ssl)]
    private static partial void SSL_set_shutdown(nint ssl, int mode);

    [LibraryImport(Ssl)]
    private static partial void SSL_SESSION_free(nint session);

    [LibraryImport(Ssl)]
    private static partial nint SSL_get_verify_result(nint ssl);

    [LibraryImport(Crypto)]
    private static partial nint X509_verify_cert_error_string(nint result);

    [LibraryImport(Crypto)]
    private static partial ulong ERR_get_error();

    [LibraryImport(Crypto)]
    private static partial void ERR_error_string_n(ulong error, ref byte buffer, nuint length);
}
