using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using TinyServer.Tests.Endpoints;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Hardening;

/// <summary>
/// Issue 9 review, driven from outside: a TLS 1.3 KeyUpdate (openssl s_client's k and K commands) is not a
/// renegotiation; the session goes on, nothing is counted as tls_renegotiation and nothing is logged above
/// Information. Guards the renegotiation refusal against catching the post-handshake messages TLS 1.3 allows.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
[Trait("Tier", "process")]
public sealed partial class ReviewFindingsTests
{
    [Theory]
    [InlineData("epoll")]
    [InlineData("sockets")]
    public async Task A_tls13_key_update_keeps_the_session_and_is_not_counted_as_renegotiation(string transport)
    {
        TestCertificate certificate = TestCertificate.Instance;
        await using ServerProcess server = await ServerProcess.StartAsync(
            ["--port", "0", "--bind", "127.0.0.1", "--transport", transport, "--tls-port", "0", "--tls-cert", certificate.CertificatePem,
             "--tls-key", certificate.KeyPem, "--metrics-exporter", "prometheus", "--prometheus-port", "0"]);
        int port = int.Parse(TlsPort().Match(await server.WaitForLineAsync(" (TLS)")).Groups[1].Value, CultureInfo.InvariantCulture);
        var metrics = new Uri((await server.WaitForLineAsync("Prometheus metrics on http://127.0.0.1:")).Split(' ')[^1]);

        using Process openssl = ProcessRunner.Start(ProcessRunner.RequireTool("openssl"), ["s_client", "-quiet", "-connect", $"127.0.0.1:{port}", "-tls1_3", "-no_ign_eof"]);
        try
        {
            Task<string> errors = openssl.StandardError.ReadToEndAsync();
            await SendAsync(openssl, "ECHO before\n");
            Assert.Equal("ECHO before", await ReadUntilAsync(openssl, "ECHO "));

            // "k": a KeyUpdate; "K": a KeyUpdate that asks the server to update its keys too. Each on its own write.
            foreach (string command in new[] { "k", "K" })
            {
                await SendAsync(openssl, command + "\n");
                await Task.Delay(300);
                await SendAsync(openssl, $"ECHO after {command}\n");
                Assert.Equal($"ECHO after {command}", await ReadUntilAsync(openssl, "ECHO "));
            }

            // Not QUIT: s_client takes a line starting with Q as its own quit command. End of input ends it (-no_ign_eof).
            await SendAsync(openssl, "TIME\n");
            Assert.StartsWith("TIME 20", await ReadUntilAsync(openssl, "TIME "), StringComparison.Ordinal);
            openssl.StandardInput.Close();
            await openssl.WaitForExitAsync().WaitAsync(Timeouts.Read);
            Assert.Contains("KEYUPDATE", await errors.WaitAsync(Timeouts.Read) + await openssl.StandardOutput.ReadToEndAsync().WaitAsync(Timeouts.Read), StringComparison.Ordinal);
        }
        finally
        {
            if (!openssl.HasExited)
            {
                openssl.Kill();
            }
        }

        using var http = new HttpClient { Timeout = Timeouts.Read };
        string scrape = await http.GetStringAsync(metrics);
        Assert.Matches("reason=\"tls_renegotiation\"\\} 0\\b", scrape);
        Assert.Matches("reason=\"tls_handshake\"\\} 0\\b", scrape);
        Assert.Equal(0, await server.StopAsync());
        foreach (string line in server.Output)
        {
            Assert.DoesNotMatch(@"\b(warn|fail|crit):|Exception|\s+at [\w.]+\(", line);
        }
    }

    private static async Task SendAsync(Process process, string text)
    {
        await process.StandardInput.WriteAsync(text);
        await process.StandardInput.FlushAsync();
    }

    /// <summary>The first output line that starts with <paramref name="prefix"/> (banner and s_client's own lines skipped).</summary>
    private static async Task<string?> ReadUntilAsync(Process process, string prefix)
    {
        string? line;
        while ((line = await process.StandardOutput.ReadLineAsync().WaitAsync(Timeouts.Read)) is not null && !line.StartsWith(prefix, StringComparison.Ordinal))
        {
        }

        return line;
    }

    [GeneratedRegex(@"Listening on 127\.0\.0\.1:(\d+) \(TLS\)$")]
    private static partial Regex TlsPort();
}
