using System.Net;
using System.Runtime.InteropServices;
using static TinyServer.Interop.LibSsl;

namespace TinyServer.LoadGen;

/// <summary>
/// The calls of OpenSSL 3 (libssl.so.3, libcrypto.so.3: what .NET's own TLS uses on Linux) that the load generator's
/// TLS makes, and the run's one <c>SSL_CTX</c>: TLS 1.2 or 1.3, the certificate checked against the system's roots
/// and --host unless --insecure, partial writes, an end of stream without close_notify read as an end (as
/// <c>SslStream</c> does), and with --tls-resume the last session kept and offered by the next handshake.
/// </summary>
internal sealed class OpenSsl : IDisposable
{
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

        SSL_CTX_ctrl(_context, CtrlMinProtocol, Tls12, 0);
        SSL_CTX_ctrl(_context, CtrlMode, ModePartialWrites, 0);
        SSL_CTX_ctrl(_context, CtrlSessionCacheMode, resume ? 1 : 0, 0); // SSL_SESS_CACHE_CLIENT or OFF
        SSL_CTX_set_options(_context, OptionIgnoreUnexpectedEof);
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
}
