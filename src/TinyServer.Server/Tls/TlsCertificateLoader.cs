using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace TinyServer.Server;

/// <summary>
/// Loads the TLS certificate and its private key at startup, so that every problem is one line naming the option
/// (exit 2) rather than a failure on the first connection: PEM (key in the same file or in --tls-key, optionally
/// encrypted) or PKCS#12 (.pfx/.p12, or any file that is not PEM).
/// </summary>
internal static class TlsCertificateLoader
{
    private const string ServerAuthentication = "1.3.6.1.5.5.7.3.1";

    /// <param name="cert">The --tls-cert path and where it came from (for the error message).</param>
    /// <param name="key">The --tls-key path and its source, if given.</param>
    /// <param name="password">The password and its source, if given. Never part of a message.</param>
    public static X509Certificate2 Load((string Path, string Source) cert, (string Path, string Source)? key, (string Value, string Source)? password)
    {
        byte[] content = Read(cert.Path, cert.Source);
        bool pem = System.Text.Encoding.ASCII.GetString(content).Contains("-----BEGIN CERTIFICATE-----", StringComparison.Ordinal);
        string extension = Path.GetExtension(cert.Path).ToLowerInvariant();
        X509Certificate2 certificate = pem && extension is not (".pfx" or ".p12")
            ? LoadPem(cert, key, password)
            : LoadPkcs12(content, cert, key, password);
        if (!certificate.HasPrivateKey)
        {
            certificate.Dispose();
            throw new OptionsException($"{cert.Source}: '{cert.Path}' has a certificate but no private key");
        }

        foreach (X509EnhancedKeyUsageExtension usage in certificate.Extensions.OfType<X509EnhancedKeyUsageExtension>())
        {
            if (!usage.EnhancedKeyUsages.Cast<Oid>().Any(oid => oid.Value == ServerAuthentication))
            {
                certificate.Dispose();
                throw new OptionsException($"{cert.Source}: the certificate in '{cert.Path}' is not for server authentication (its extended key usage lacks serverAuth)");
            }
        }

        return certificate;
    }

    private static X509Certificate2 LoadPem((string Path, string Source) cert, (string Path, string Source)? key, (string Value, string Source)? password)
    {
        (string keyPath, string keySource) = key ?? cert;
        string keyText = System.Text.Encoding.ASCII.GetString(key is null ? Read(cert.Path, cert.Source) : Read(keyPath, keySource));
        if (!keyText.Contains("PRIVATE KEY-----", StringComparison.Ordinal))
        {
            throw new OptionsException(key is null
                ? $"{cert.Source}: '{cert.Path}' holds no private key: put the key in the same PEM file or give --tls-key"
                : $"{keySource}: '{keyPath}' holds no PEM private key");
        }

        bool encrypted = keyText.Contains("-----BEGIN ENCRYPTED PRIVATE KEY-----", StringComparison.Ordinal);
        if (encrypted && password is null)
        {
            throw new OptionsException($"{keySource}: the private key in '{keyPath}' is encrypted: give its password with --tls-cert-password (better: TINYSERVER_TLS_CERT_PASSWORD)");
        }

        try
        {
            return encrypted
                ? X509Certificate2.CreateFromEncryptedPemFile(cert.Path, password!.Value.Value, keyPath)
                : X509Certificate2.CreateFromPemFile(cert.Path, keyPath);
        }
        catch (CryptographicException e) when (encrypted)
        {
            throw new OptionsException($"{password!.Value.Source}: cannot decrypt the private key in '{keyPath}' (wrong password?): {OneLine(e.Message)}");
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            throw new OptionsException($"{cert.Source}: cannot load the certificate and key from '{cert.Path}'{(key is null ? "" : $" and '{keyPath}'")}: {OneLine(e.Message)}");
        }
    }

    private static X509Certificate2 LoadPkcs12(byte[] content, (string Path, string Source) cert, (string Path, string Source)? key, (string Value, string Source)? password)
    {
        if (key is { } given)
        {
            throw new OptionsException($"{given.Source}: '{cert.Path}' is a PKCS#12 file, which carries its own key; --tls-key goes with a PEM certificate");
        }

        try
        {
            return X509CertificateLoader.LoadPkcs12(content, password?.Value, X509KeyStorageFlags.EphemeralKeySet);
        }
        catch (CryptographicException e) when (password is { } secret && IsWrongPassword(content))
        {
            throw new OptionsException($"{secret.Source}: the password does not open '{cert.Path}': {OneLine(e.Message)}");
        }
        catch (CryptographicException e) when (IsWrongPassword(content))
        {
            throw new OptionsException($"{cert.Source}: '{cert.Path}' needs a password: give it with --tls-cert-password (better: TINYSERVER_TLS_CERT_PASSWORD): {OneLine(e.Message)}");
        }
        catch (CryptographicException e)
        {
            throw new OptionsException($"{cert.Source}: '{cert.Path}' is neither a PEM certificate nor a PKCS#12 (.pfx) file: {OneLine(e.Message)}");
        }
    }

    // The file is a PKCS#12 structure, so a failure to open it is about the password.
    private static bool IsWrongPassword(byte[] content)
    {
        try
        {
            return X509Certificate2.GetCertContentType(content) == X509ContentType.Pkcs12;
        }
        catch (CryptographicException)
        {
            return false;
        }
    }

    private static byte[] Read(string path, string source)
    {
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new OptionsException($"{source}: cannot read '{path}': {OneLine(e.Message)}");
        }
    }

    private static string OneLine(string text) => text.ReplaceLineEndings(" ").Trim();
}
