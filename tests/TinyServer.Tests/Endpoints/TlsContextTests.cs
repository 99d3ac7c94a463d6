using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using TinyServer.Server;

namespace TinyServer.Tests.Endpoints;

/// <summary>
/// The OpenSSL context the TLS endpoints are served from: it takes ECDSA and RSA certificates with their keys,
/// refuses a certificate without one (.NET itself refuses to pair a certificate with another key), and sets <c>SSL_MODE_RELEASE_BUFFERS</c> only with --tls-release-buffers.
/// (Handshakes and sessions over it: TlsTests, TlsProcessTests, TlsGateTests.)
/// </summary>
[Trait("Tier", "unit")]
public sealed class TlsContextTests
{
    private const long ReleaseBuffers = 0x10;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Release_buffers_is_set_only_when_asked(bool release)
    {
        using var context = new TlsContext(TestCertificate.Instance.Certificate, release);
        Assert.Equal(release, (context.Mode & ReleaseBuffers) != 0);
    }

    [Fact]
    public void An_rsa_certificate_is_taken()
    {
        using RSA key = RSA.Create(2048);
        using X509Certificate2 certificate = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1)
            .CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        using var context = new TlsContext(certificate, releaseBuffers: false);
        Assert.Equal(0, context.Mode & ReleaseBuffers);
    }

    [Fact]
    public void A_certificate_without_its_key_is_refused()
    {
        using X509Certificate2 bare = X509CertificateLoader.LoadCertificate(TestCertificate.Instance.Certificate.RawData);
        InvalidOperationException error = Assert.Throws<InvalidOperationException>(() => new TlsContext(bare, releaseBuffers: false));
        Assert.Contains("no ECDSA or RSA private key", error.Message, StringComparison.Ordinal);
    }
}
