using System.Globalization;
using System.Net;
using System.Security.Authentication;
using System.Text.RegularExpressions;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Endpoints;

/// <summary>The server program with TLS and a Unix socket: startup lines, the protocol, option errors, cleanup.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
[Trait("Tier", "process")]
public sealed partial class EndpointProcessTests
{
    /// <summary>A server on 127.0.0.1 (plain and TLS, any free ports) and on a Unix socket.</summary>
    public static async Task<(ServerProcess Server, IPEndPoint Tls, string Unix)> StartAllAsync(params string[] extra)
    {
        TestCertificate certificate = TestCertificate.Instance;
        string unix = TempSocket.NewPath();
        ServerProcess server = await ServerProcess.StartAsync(
            ["--port", "0", "--bind", "127.0.0.1", "--tls-port", "0", "--tls-cert", certificate.CertificatePem, "--tls-key", certificate.KeyPem, "--unix", unix, .. extra]);
        string tlsLine = await server.WaitForLineAsync(" (TLS)");
        var tls = new IPEndPoint(IPAddress.Loopback, int.Parse(TlsPort().Match(tlsLine).Groups[1].Value, CultureInfo.InvariantCulture));
        Assert.EndsWith($"Listening on unix:{unix}", await server.WaitForLineAsync("Listening on unix:"), StringComparison.Ordinal);
        return (server, tls, unix);
    }

    [Fact]
    public async Task One_process_serves_tcp_tls_and_the_unix_socket_and_removes_the_socket_on_sigterm()
    {
        (ServerProcess server, IPEndPoint tlsEndPoint, string unix) = await StartAllAsync("--log-level", "Debug", "--unix-mode", "0600");
        await using (server)
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(unix));
            await using (RawConnection plain = await RawConnection.OpenAsync(server.EndPoint))
            {
                await plain.SendAsync("ECHO tcp\n");
                Assert.Equal("ECHO tcp", await plain.ReadLineAsync());
            }

            foreach (SslProtocols protocol in new[] { SslProtocols.Tls12, SslProtocols.Tls13 })
            {
                await using RawConnection tls = await RawConnection.ConnectTlsAsync(tlsEndPoint, protocol, TestCertificate.Instance.Certificate);
                Assert.Equal("WELCOME, I'm TinyServer not pressure", await tls.ReadLineAsync());
                await tls.SendAsync("ECHO tls\nQUIT\n");
                Assert.Equal(["ECHO tls", "BYE"], await tls.ReadLinesToEndAsync());
            }

            await using (RawConnection local = await RawConnection.ConnectUnixAsync(unix))
            {
                Assert.Equal("WELCOME, I'm TinyServer not pressure", await local.ReadLineAsync());
                await local.SendAsync("ECHO unix\nQUIT\n");
                Assert.Equal(["ECHO unix", "BYE"], await local.ReadLinesToEndAsync());
            }

            Assert.Equal(0, await server.StopAsync());
            Assert.False(File.Exists(unix), "the socket file is removed at shutdown");
            Assert.Contains(server.Output, line => line.Contains($"from unix:{unix} closed: Quit, 2 requests", StringComparison.Ordinal));
            Assert.Contains(server.Output, line => line.Contains("Stopped after 4 connections", StringComparison.Ordinal));
            Assert.DoesNotContain(server.Output, line => line.Contains("warn", StringComparison.Ordinal) || line.Contains("fail", StringComparison.Ordinal));
        }
    }

    [Theory]
    [InlineData("pfx")]
    [InlineData("combined")]
    [InlineData("encrypted")]
    public async Task Each_certificate_format_serves(string format)
    {
        TestCertificate certificate = TestCertificate.Instance;
        string[] tls = format switch
        {
            "pfx" => ["--tls-cert", certificate.Pfx],
            "combined" => ["--tls-cert", certificate.CombinedPem],
            _ => ["--tls-cert", certificate.CertificatePem, "--tls-key", certificate.EncryptedKeyPem],
        };
        // The password through the environment, as the README recommends.
        var environment = new Dictionary<string, string> { ["TINYSERVER_TLS_CERT_PASSWORD"] = TestCertificate.Password };
        await using ServerProcess server = await ServerProcess.StartAsync(["--port", "0", "--bind", "127.0.0.1", "--tls-port", "0", .. tls], environment);
        string line = await server.WaitForLineAsync(" (TLS)");
        var endPoint = new IPEndPoint(IPAddress.Loopback, int.Parse(TlsPort().Match(line).Groups[1].Value, CultureInfo.InvariantCulture));

        await using RawConnection client = await RawConnection.ConnectTlsAsync(endPoint, SslProtocols.Tls13, certificate.Certificate);
        Assert.Equal("WELCOME, I'm TinyServer not pressure", await client.ReadLineAsync());
    }

    [Theory]
    [InlineData("--tls-port|0|--tls-cert|{dir}/missing.pem", "--tls-cert on the command line: cannot read '{dir}/missing.pem'")]
    [InlineData("--tls-port|0|--tls-cert|{pfx}|--tls-cert-password|wrong", "--tls-cert-password on the command line: the password does not open '{pfx}'")]
    [InlineData("--tls-port|0|--tls-cert|{pfx}", "--tls-cert on the command line: '{pfx}' needs a password")]
    [InlineData("--tls-port|0|--tls-cert|{cert}", "--tls-cert on the command line: '{cert}' holds no private key")]
    [InlineData("--tls-port|0|--tls-cert|{cert}|--tls-key|{cert}", "--tls-key on the command line: '{cert}' holds no PEM private key")]
    [InlineData("--tls-port|0|--tls-cert|{cert}|--tls-key|{encrypted}", "--tls-key on the command line: the private key in '{encrypted}' is encrypted")]
    [InlineData("--tls-port|0|--tls-cert|{cert}|--tls-key|{encrypted}|--tls-cert-password|wrong", "--tls-cert-password on the command line: cannot decrypt the private key")]
    [InlineData("--tls-port|0|--tls-cert|{certonly}|--tls-cert-password|" + TestCertificate.Password, "--tls-cert on the command line: '{certonly}' has a certificate but no private key")]
    [InlineData("--tls-port|0|--tls-cert|{client}", "is not for server authentication")]
    [InlineData("--tls-port|0|--tls-cert|{pfx}|--tls-key|{key}", "--tls-key on the command line: '{pfx}' is a PKCS#12 file")]
    [InlineData("--tls-port|0|--tls-cert|{key}", "is neither a PEM certificate nor a PKCS#12")]
    [InlineData("--tls-port|0", "--tls-port needs --tls-cert")]
    [InlineData("--tls-cert|{combined}", "--tls-cert on the command line: a certificate needs --tls-port")]
    [InlineData("--tls-key|{key}", "--tls-key on the command line: TLS settings need --tls-port and --tls-cert")]
    [InlineData("--tls-port|1024|--tls-cert|{combined}", "--tls-port on the command line: '1024' is not a valid port")]
    [InlineData("--port|40123|--tls-port|40123|--tls-cert|{combined}", "--tls-port: '40123' is also --port")]
    [InlineData("--unix|{dir}/no/such/dir/x.sock", "--unix on the command line: the directory '{dir}/no/such/dir' does not exist")]
    [InlineData("--unix-mode|888", "--unix-mode on the command line: '888' is not a file mode")]
    public async Task A_bad_endpoint_option_exits_2_with_one_line(string arguments, string expected)
    {
        TestCertificate c = TestCertificate.Instance;
        string Fill(string text) => text.Replace("{dir}", c.Directory, StringComparison.Ordinal).Replace("{pfx}", c.Pfx, StringComparison.Ordinal)
            .Replace("{certonly}", c.PfxWithoutKey, StringComparison.Ordinal).Replace("{cert}", c.CertificatePem, StringComparison.Ordinal)
            .Replace("{key}", c.KeyPem, StringComparison.Ordinal).Replace("{encrypted}", c.EncryptedKeyPem, StringComparison.Ordinal)
            .Replace("{client}", c.ClientOnlyPem, StringComparison.Ordinal).Replace("{combined}", c.CombinedPem, StringComparison.Ordinal);

        ProcessResult result = await ProcessRunner.RunAsync(BuiltPrograms.Dotnet, [BuiltPrograms.ServerDll, .. arguments.Split('|').Select(Fill)]);

        Assert.Equal(2, result.ExitCode);
        Assert.Equal("", result.StandardOutput);
        string line = Assert.Single(result.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("tinyserver: error: ", line, StringComparison.Ordinal);
        Assert.Contains(Fill(expected), line, StringComparison.Ordinal);
        Assert.DoesNotContain("wrong", line.Replace("(wrong password?)", "", StringComparison.Ordinal), StringComparison.Ordinal); // Never the password.
    }

    [Fact]
    public async Task A_unix_socket_another_server_holds_exits_1_with_one_line()
    {
        (ServerProcess first, _, string unix) = await StartAllAsync();
        await using (first)
        {
            ProcessResult result = await ProcessRunner.RunAsync(BuiltPrograms.Dotnet, [BuiltPrograms.ServerDll, "--port", "0", "--bind", "127.0.0.1", "--unix", unix]);

            Assert.Equal(1, result.ExitCode);
            Assert.Equal($"tinyserver: error: cannot listen: another process is listening on {unix} (a second server needs its own --unix path)", result.StandardError.Trim());
            await using RawConnection client = await RawConnection.ConnectUnixAsync(unix);
            Assert.Equal("WELCOME, I'm TinyServer not pressure", await client.ReadLineAsync());
        }
    }

    [Fact]
    public async Task A_killed_server_leaves_a_stale_socket_that_the_next_start_replaces()
    {
        (ServerProcess first, _, string unix) = await StartAllAsync();
        await first.DisposeAsync(); // SIGKILL: no cleanup.
        Assert.True(File.Exists(unix));

        await using ServerProcess second = await ServerProcess.StartAsync(["--port", "0", "--bind", "127.0.0.1", "--unix", unix]);
        await second.WaitForLineAsync("Listening on unix:");
        await using RawConnection client = await RawConnection.ConnectUnixAsync(unix);
        Assert.Equal("WELCOME, I'm TinyServer not pressure", await client.ReadLineAsync());
    }

    [Fact]
    public async Task The_client_program_reaches_a_server_process_over_tls_and_the_unix_socket()
    {
        (ServerProcess server, IPEndPoint tlsEndPoint, string unix) = await StartAllAsync();
        await using (server)
        {
            ProcessResult tls = await ProcessRunner.RunAsync(BuiltPrograms.Dotnet,
                [BuiltPrograms.ClientDll, "--tls", "--insecure", "127.0.0.1", tlsEndPoint.Port.ToString(CultureInfo.InvariantCulture), "ECHO via tls"], standardInput: "");
            Assert.Equal(0, tls.ExitCode);
            Assert.Contains("<- ECHO via tls", tls.OutputLines);

            ProcessResult local = await ProcessRunner.RunAsync(BuiltPrograms.Dotnet, [BuiltPrograms.ClientDll, "--unix", unix, "ECHO via unix"], standardInput: "");
            Assert.Equal(0, local.ExitCode);
            Assert.Contains("<- ECHO via unix", local.OutputLines);
            Assert.Equal("", local.StandardError);
        }
    }

    [Fact]
    public async Task Help_lists_the_endpoint_options()
    {
        ProcessResult result = await ProcessRunner.RunAsync(BuiltPrograms.Dotnet, [BuiltPrograms.ServerDll, "--help"]);

        Assert.Equal(0, result.ExitCode);
        foreach (string option in new[] { "--unix ", "--unix-mode", "--tls-port", "--tls-cert ", "--tls-key", "--tls-cert-password", "--tls-handshake-timeout", "TINYSERVER_TLS_CERT_PASSWORD" })
        {
            Assert.Contains(option, result.StandardOutput, StringComparison.Ordinal);
        }
    }

    [GeneratedRegex(@"Listening on 127\.0\.0\.1:(\d+) \(TLS\)$")]
    private static partial Regex TlsPort();
}
