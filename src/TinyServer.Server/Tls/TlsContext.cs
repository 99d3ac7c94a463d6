using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using static TinyServer.Interop.LibSsl;

namespace TinyServer.Server;

/// <summary>
/// The server's one OpenSSL context (<c>SSL_CTX</c>), made at startup from the certificate and key that
/// <see cref="TlsCertificateLoader"/> loaded: TLS 1.2 and 1.3 only, OpenSSL's default ciphers (as SslStream's on
/// Linux), no ALPN, no client certificates, renegotiation refused, session tickets (resumption) on, and with
/// <c>--tls-release-buffers</c> record buffers released while a session holds no record. Every TLS session of the
/// process is made from it.
/// </summary>
public sealed class TlsContext : IDisposable
{
    private readonly nint _context;

    public TlsContext(X509Certificate2 certificate, bool releaseBuffers)
    {
        _context = SSL_CTX_new(TLS_server_method());
        if (_context == 0)
        {
            throw new InvalidOperationException($"OpenSSL: {LastError() ?? "SSL_CTX_new failed"}");
        }

        try
        {
            SSL_CTX_ctrl(_context, CtrlMinProtocol, Tls12, 0);
            if (releaseBuffers)
            {
                SSL_CTX_ctrl(_context, CtrlMode, ModeReleaseBuffers, 0);
            }

            SSL_CTX_set_options(_context, OptionNoRenegotiation | OptionIgnoreUnexpectedEof);
            byte[] id = "tinyserver"u8.ToArray();
            SSL_CTX_set_session_id_context(_context, ref id[0], (uint)id.Length);
            Use(certificate);
        }
        catch
        {
            SSL_CTX_free(_context);
            throw;
        }
    }

    /// <summary>OpenSSL's mode bits for the sessions of this context (<c>SSL_CTX_get_mode</c>).</summary>
    internal long Mode => SSL_CTX_ctrl(_context, CtrlMode, 0, 0);

    /// <summary>A new session of this context, its handshake not started; null if OpenSSL has no memory.</summary>
    internal nint NewSession() => SSL_new(_context);

    public void Dispose() => SSL_CTX_free(_context);

    private void Use(X509Certificate2 certificate)
    {
        using AsymmetricAlgorithm key = (AsymmetricAlgorithm?)certificate.GetECDsaPrivateKey() ?? certificate.GetRSAPrivateKey()
            ?? throw new InvalidOperationException("the certificate has no ECDSA or RSA private key");
        nint x509 = Decode(certificate.RawData, d2i_X509);
        try
        {
            Check(SSL_CTX_use_certificate(_context, x509), "the certificate");
        }
        finally
        {
            X509_free(x509); // The context holds its own reference.
        }

        byte[] pkcs8 = key.ExportPkcs8PrivateKey();
        nint privateKey = Decode(pkcs8, d2i_AutoPrivateKey);
        CryptographicOperations.ZeroMemory(pkcs8);
        try
        {
            Check(SSL_CTX_use_PrivateKey(_context, privateKey), "the private key");
            Check(SSL_CTX_check_private_key(_context), "the private key against the certificate");
        }
        finally
        {
            EVP_PKEY_free(privateKey);
        }
    }

    private delegate nint Decoder(nint into, ref nint data, nint length);

    private static nint Decode(byte[] der, Decoder decode)
    {
        nint copy = Marshal.AllocHGlobal(der.Length);
        try
        {
            Marshal.Copy(der, 0, copy, der.Length);
            nint data = copy; // OpenSSL moves it past what it read.
            nint decoded = decode(0, ref data, der.Length);
            return decoded != 0 ? decoded : throw new InvalidOperationException($"OpenSSL could not read the certificate or key: {LastError()}");
        }
        finally
        {
            Marshal.Copy(new byte[der.Length], 0, copy, der.Length); // A key leaves no copy behind.
            Marshal.FreeHGlobal(copy);
        }
    }

    private static void Check(int result, string what)
    {
        if (result != 1)
        {
            throw new InvalidOperationException($"OpenSSL refused {what}: {LastError()}");
        }
    }
}
