using System.Globalization;
using TinyServer.Server;
using TinyServer.Tests.External;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Endpoints;

/// <summary>
/// Real peers on the new endpoints: <c>openssl s_client</c> and socat's OPENSSL address over TLS, both verifying the
/// certificate against the test CA and the name localhost; <c>nc -U</c> over the Unix socket.
/// </summary>
[Trait("Tier", "process")]
public sealed class ExternalPeerTests
{
    private static Task<TestServer> StartAsync() => TestServer.StartAsync(new ServerOptions
    {
        TlsPort = 0,
        TlsCertificate = TestCertificate.Instance.Certificate,
        UnixSocketPath = TempSocket.NewPath(),
    });

    [Theory]
    [InlineData("-tls1_2", "Lf")]
    [InlineData("-tls1_3", "Lf")]
    [InlineData("-tls1_3", "CrLf")]
    [InlineData("-tls1_3", "Errors")]
    public async Task Openssl_s_client_session(string version, string session)
    {
        string openssl = ProcessRunner.RequireTool("openssl");
        (string input, string[] expected) = Sessions.Get(session);
        await using TestServer server = await StartAsync();

        // -quiet ignores the end of standard input; the session's QUIT makes the server close, with a close_notify
        // (without one, s_client reports "unexpected eof" and exits 1).
        ProcessResult result = await ProcessRunner.RunAsync(openssl,
        [
            "s_client", "-quiet", "-verify_quiet", "-verify_return_error", "-CAfile", TestCertificate.Instance.CertificatePem,
            "-verify_hostname", "localhost", "-servername", "localhost", version, "-connect", $"127.0.0.1:{server.TlsEndPoint!.Port}",
        ], input);

        Sessions.AssertOutput(result with { StandardError = "" }, expected);
        Assert.DoesNotContain("error", result.StandardError, StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [InlineData("Lf")]
    [InlineData("HalfCloseLastLineWithoutLf")]
    public async Task Socat_openssl_session_verifying_the_certificate(string session)
    {
        string socat = ProcessRunner.RequireTool("socat");
        (string input, string[] expected) = Sessions.Get(session);
        await using TestServer server = await StartAsync();

        ProcessResult result = await ProcessRunner.RunAsync(socat,
            ["-t", "10", "-", $"OPENSSL:localhost:{server.TlsEndPoint!.Port},cafile={TestCertificate.Instance.CertificatePem}"], input);

        Sessions.AssertOutput(result, expected);
    }

    [Fact]
    public async Task Socat_with_verify_0_accepts_the_self_signed_certificate_and_without_a_ca_refuses_it()
    {
        string socat = ProcessRunner.RequireTool("socat");
        (string input, string[] expected) = Sessions.Get("Lf");
        await using TestServer server = await StartAsync();
        string port = server.TlsEndPoint!.Port.ToString(CultureInfo.InvariantCulture);

        Sessions.AssertOutput(await ProcessRunner.RunAsync(socat, ["-t", "10", "-", $"OPENSSL:127.0.0.1:{port},verify=0"], input), expected);

        ProcessResult refused = await ProcessRunner.RunAsync(socat, ["-t", "10", "-", $"OPENSSL:localhost:{port}"], input);
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("certificate verify failed", refused.StandardError, StringComparison.Ordinal);
        Assert.Equal("", refused.StandardOutput);
        Assert.Empty(server.Warnings);
    }

    [Theory]
    [InlineData("Lf")]
    [InlineData("CrLf")]
    [InlineData("HalfCloseLastLineWithoutLf")]
    [InlineData("Errors")]
    public async Task Nc_over_the_unix_socket(string session)
    {
        string nc = ProcessRunner.RequireTool("nc");
        (string input, string[] expected) = Sessions.Get(session);
        string path = TempSocket.NewPath();
        await using TestServer server = await TestServer.StartAsync(new ServerOptions { UnixSocketPath = path });

        ProcessResult result = await ProcessRunner.RunAsync(nc, ["-N", "-U", path], input);

        Sessions.AssertOutput(result, expected);
    }
}
