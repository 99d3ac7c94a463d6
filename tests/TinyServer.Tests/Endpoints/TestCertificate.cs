using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace TinyServer.Tests.Endpoints;

/// <summary>
/// A self-signed server certificate for localhost, 127.0.0.1 and ::1, made once per test run, with the files the
/// server's options take: PEM (separate, combined, encrypted key) and PKCS#12, plus broken variants.
/// </summary>
public sealed class TestCertificate
{
    public const string Password = "test-secret";

    private static readonly Lazy<TestCertificate> Shared = new(() => new TestCertificate());

    private TestCertificate()
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("tinyserver-tls-").FullName;
        AppDomain.CurrentDomain.ProcessExit += (_, _) => System.IO.Directory.Delete(Directory, recursive: true);
        using ECDsa key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        Certificate = Create(key, "1.3.6.1.5.5.7.3.1"); // serverAuth
        string certificatePem = Certificate.ExportCertificatePem();
        string keyPem = key.ExportPkcs8PrivateKeyPem();
        Write(CertificatePem, certificatePem);
        Write(KeyPem, keyPem);
        Write(CombinedPem, certificatePem + "\n" + keyPem);
        Write(EncryptedKeyPem, key.ExportEncryptedPkcs8PrivateKeyPem(Password, new PbeParameters(PbeEncryptionAlgorithm.Aes256Cbc, HashAlgorithmName.SHA256, 10_000)));
        File.WriteAllBytes(Pfx, Certificate.Export(X509ContentType.Pkcs12, Password));
        File.WriteAllBytes(PfxWithoutKey, X509CertificateLoader.LoadCertificate(Certificate.RawData).Export(X509ContentType.Pkcs12, Password));
        using X509Certificate2 clientOnly = Create(key, "1.3.6.1.5.5.7.3.2"); // clientAuth
        Write(ClientOnlyPem, clientOnly.ExportCertificatePem() + "\n" + keyPem);
    }

    public static TestCertificate Instance => Shared.Value;

    public string Directory { get; }

    /// <summary>The certificate with its private key.</summary>
    public X509Certificate2 Certificate { get; }

    public string CertificatePem => Path.Combine(Directory, "cert.pem");

    public string KeyPem => Path.Combine(Directory, "key.pem");

    public string CombinedPem => Path.Combine(Directory, "combined.pem");

    /// <summary>The key alone, encrypted with <see cref="Password"/>.</summary>
    public string EncryptedKeyPem => Path.Combine(Directory, "key-encrypted.pem");

    /// <summary>Certificate and key, protected by <see cref="Password"/>.</summary>
    public string Pfx => Path.Combine(Directory, "cert.pfx");

    public string PfxWithoutKey => Path.Combine(Directory, "cert-only.pfx");

    /// <summary>A certificate whose extended key usage is client authentication only.</summary>
    public string ClientOnlyPem => Path.Combine(Directory, "client-only.pem");

    private static X509Certificate2 Create(ECDsa key, string usage)
    {
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("localhost");
        names.AddIpAddress(IPAddress.Loopback);
        names.AddIpAddress(IPAddress.IPv6Loopback);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(usage)], critical: false));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(7));
    }

    private static void Write(string path, string text) => File.WriteAllText(path, text);
}
