using System.Runtime.InteropServices;
using System.Text;

namespace TinyServer.Interop;

/// <summary>
/// The calls of OpenSSL 3 (libssl.so.3 and libcrypto.so.3, the library .NET's own TLS uses on Linux) that the
/// server's TLS sessions and the load generator's make. Declarations and constants only: the server's context and
/// sessions are in TinyServer.Server/Tls, the load generator's in TinyServer.LoadGen.
/// </summary>
internal static partial class LibSsl
{
    public const int ErrorSsl = 1;
    public const int WantRead = 2;
    public const int WantWrite = 3;
    public const int ErrorSyscall = 5;
    public const int ZeroReturn = 6;

    public const int CtrlMode = 33;
    public const int CtrlSessionCacheMode = 44;
    public const int CtrlHostName = 55;
    public const int CtrlMinProtocol = 123;
    public const int Tls12 = 0x0303;

    /// <summary>SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER.</summary>
    public const nint ModePartialWrites = 1 | 2;

    /// <summary>SSL_MODE_RELEASE_BUFFERS: a session frees its record buffers while it holds no record.</summary>
    public const nint ModeReleaseBuffers = 0x10;

    /// <summary>SSL_OP_IGNORE_UNEXPECTED_EOF: an end of stream without close_notify reads as an end, as SslStream reads it.</summary>
    public const ulong OptionIgnoreUnexpectedEof = 1UL << 7;

    /// <summary>SSL_OP_NO_RENEGOTIATION.</summary>
    public const ulong OptionNoRenegotiation = 1UL << 30;

    /// <summary>The reason code of OpenSSL's SSL_R_NO_RENEGOTIATION, in the low 23 bits of an error (ERR_GET_REASON).</summary>
    public const int ReasonNoRenegotiation = 339;

    private const string Ssl = "libssl.so.3";
    private const string Crypto = "libcrypto.so.3";
    private const int BioSetMemEofReturn = 130; // BIO_C_SET_BUF_MEM_EOF_RETURN

    /// <summary>OpenSSL's first queued error as its reason text ("certificate verify failed"), or null; the queue is emptied.</summary>
    public static string? LastError()
    {
        ulong error = ERR_get_error();
        ERR_clear_error();
        if (error == 0)
        {
            return null;
        }

        var text = new byte[256];
        ERR_error_string_n(error, ref text[0], (nuint)text.Length);
        string all = Encoding.UTF8.GetString(text, 0, Math.Max(0, Array.IndexOf(text, (byte)0)));
        return all[(all.LastIndexOf(':') + 1)..]; // "error:0A000086:SSL routines::certificate verify failed"
    }

    /// <summary>A memory BIO that reads as "try again" when empty (until <see cref="SetEndOfInput"/>).</summary>
    public static nint NewMemoryBio() => BIO_new(BIO_s_mem());

    /// <summary>From now on an empty memory BIO reads as the end of the stream.</summary>
    public static void SetEndOfInput(nint bio) => BIO_ctrl(bio, BioSetMemEofReturn, 0, 0);

    [LibraryImport(Ssl)]
    public static partial nint TLS_client_method();

    [LibraryImport(Ssl)]
    public static partial nint TLS_server_method();

    [LibraryImport(Ssl)]
    public static partial nint SSL_CTX_new(nint method);

    [LibraryImport(Ssl)]
    public static partial void SSL_CTX_free(nint context);

    [LibraryImport(Ssl)]
    public static partial nint SSL_CTX_ctrl(nint context, int command, nint argument, nint pointer);

    [LibraryImport(Ssl)]
    public static partial ulong SSL_CTX_set_options(nint context, ulong options);

    [LibraryImport(Ssl)]
    public static partial void SSL_CTX_set_verify(nint context, int mode, nint callback);

    [LibraryImport(Ssl)]
    public static partial int SSL_CTX_set_default_verify_paths(nint context);

    [LibraryImport(Ssl)]
    public static partial int SSL_CTX_use_certificate(nint context, nint certificate);

    [LibraryImport(Ssl)]
    public static partial int SSL_CTX_use_PrivateKey(nint context, nint key);

    [LibraryImport(Ssl)]
    public static partial int SSL_CTX_check_private_key(nint context);

    [LibraryImport(Ssl)]
    public static partial int SSL_CTX_set_session_id_context(nint context, ref byte id, uint length);

    [LibraryImport(Ssl)]
    public static partial nint SSL_new(nint context);

    [LibraryImport(Ssl)]
    public static partial void SSL_free(nint ssl);

    [LibraryImport(Ssl)]
    public static partial int SSL_set_fd(nint ssl, int fd);

    [LibraryImport(Ssl)]
    public static partial void SSL_set_bio(nint ssl, nint read, nint write);

    [LibraryImport(Ssl)]
    public static partial void SSL_set_connect_state(nint ssl);

    [LibraryImport(Ssl)]
    public static partial void SSL_set_accept_state(nint ssl);

    [LibraryImport(Ssl, SetLastError = true)]
    public static partial int SSL_do_handshake(nint ssl);

    [LibraryImport(Ssl, SetLastError = true)]
    public static partial int SSL_read(nint ssl, ref byte buffer, int count);

    [LibraryImport(Ssl, SetLastError = true)]
    public static partial int SSL_write(nint ssl, ref byte buffer, int count);

    [LibraryImport(Ssl)]
    public static partial int SSL_shutdown(nint ssl);

    [LibraryImport(Ssl)]
    public static partial int SSL_pending(nint ssl);

    [LibraryImport(Ssl)]
    public static partial int SSL_get_error(nint ssl, int result);

    [LibraryImport(Ssl)]
    public static partial int SSL_session_reused(nint ssl);

    [LibraryImport(Ssl)]
    public static partial int SSL_version(nint ssl);

    [LibraryImport(Ssl, StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint SSL_ctrl(nint ssl, int command, nint argument, string pointer);

    [LibraryImport(Ssl, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int SSL_set1_host(nint ssl, string host);

    [LibraryImport(Ssl)]
    public static partial nint SSL_get0_param(nint ssl);

    [LibraryImport(Ssl)]
    public static partial nint SSL_get1_session(nint ssl);

    [LibraryImport(Ssl)]
    public static partial int SSL_set_session(nint ssl, nint session);

    [LibraryImport(Ssl)]
    public static partial int SSL_SESSION_is_resumable(nint session);

    [LibraryImport(Ssl)]
    public static partial void SSL_set_shutdown(nint ssl, int mode);

    [LibraryImport(Ssl)]
    public static partial void SSL_SESSION_free(nint session);

    [LibraryImport(Ssl)]
    public static partial nint SSL_get_verify_result(nint ssl);

    [LibraryImport(Crypto)]
    public static partial nint X509_verify_cert_error_string(nint result);

    [LibraryImport(Crypto, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int X509_VERIFY_PARAM_set1_ip_asc(nint parameters, string address);

    [LibraryImport(Crypto)]
    public static partial nint d2i_X509(nint into, ref nint data, nint length);

    [LibraryImport(Crypto)]
    public static partial void X509_free(nint certificate);

    [LibraryImport(Crypto)]
    public static partial nint d2i_AutoPrivateKey(nint into, ref nint data, nint length);

    [LibraryImport(Crypto)]
    public static partial void EVP_PKEY_free(nint key);

    [LibraryImport(Crypto)]
    public static partial nint BIO_s_mem();

    [LibraryImport(Crypto)]
    public static partial nint BIO_new(nint method);

    [LibraryImport(Crypto)]
    public static partial int BIO_write(nint bio, ref byte data, int length);

    [LibraryImport(Crypto)]
    public static partial int BIO_read(nint bio, ref byte data, int length);

    [LibraryImport(Crypto)]
    public static partial nuint BIO_ctrl_pending(nint bio);

    [LibraryImport(Crypto)]
    public static partial nint BIO_ctrl(nint bio, int command, nint argument, nint pointer);

    [LibraryImport(Ssl)]
    public static unsafe partial void SSL_set_msg_callback(nint ssl, delegate* unmanaged<int, int, int, byte*, nuint, nint, nint, void> callback);

    [LibraryImport(Ssl)]
    public static partial int SSL_set_ex_data(nint ssl, int index, nint data);

    [LibraryImport(Ssl)]
    public static partial nint SSL_get_ex_data(nint ssl, int index);

    [LibraryImport(Crypto)]
    public static partial void ERR_clear_error();

    [LibraryImport(Crypto)]
    public static partial ulong ERR_get_error();

    [LibraryImport(Crypto)]
    public static partial ulong ERR_peek_error();

    [LibraryImport(Crypto)]
    public static partial void ERR_error_string_n(ulong error, ref byte buffer, nuint length);
}
