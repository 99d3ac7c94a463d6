using System.Globalization;
using System.Net;
using System.Security.Authentication;
using System.Text.RegularExpressions;
using TinyServer.Server;
using TinyServer.Tests.Endpoints;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Cli;

/// <summary>
/// A second server on a port a first server holds: it must fail to start (exit 1, one line naming the address), not
/// share the port with the first (SO_REUSEPORT), while a restart still binds a port whose last connections linger
/// in TIME_WAIT (SO_REUSEADDR). Real processes on both sides: a plain <c>TcpListener</c> holding the port sets neither
/// option, so it cannot show the sharing.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
[Trait("Tier", "process")]
public sealed partial class PortInUseTests
{
    /// <summary>Long enough for a second process to start and fail on a loaded machine; one that serves never exits.</summary>
    private static readonly TimeSpan SecondServerExit = TimeSpan.FromSeconds(30);

    [Theory]
    [InlineData(TransportKind.Epoll, "tcp")]
    [InlineData(TransportKind.Sockets, "tcp")]
    [InlineData(TransportKind.Epoll, "ipv6")]
    [InlineData(TransportKind.Epoll, "tls")]
    [InlineData(TransportKind.Sockets, "tls")]
    [InlineData(TransportKind.Epoll, "prometheus")]
    public async Task A_second_server_on_a_port_in_use_exits_1_naming_the_address_and_the_first_keeps_serving(TransportKind transport, string endpoint)
    {
        TestCertificate certificate = TestCertificate.Instance;
        string[] tls = ["--tls-cert", certificate.CertificatePem, "--tls-key", certificate.KeyPem];
        string[] common = ["--transport", transport == TransportKind.Epoll ? "epoll" : "sockets"];
        string[] first = endpoint switch
        {
            "ipv6" => ["--port", "0", "--bind", "127.0.0.1", "--bind", "::1"],
            "tls" => ["--port", "0", "--bind", "127.0.0.1", "--tls-port", "0", .. tls],
            "prometheus" => ["--port", "0", "--bind", "127.0.0.1", "--metrics-exporter", "prometheus", "--prometheus-port", "0"],
            _ => ["--port", "0", "--bind", "127.0.0.1"],
        };
        await using ServerProcess server = await ServerProcess.StartAsync([.. first, .. common]);
        string port = endpoint switch
        {
            "ipv6" => Port(await server.WaitForLineAsync("Listening on [::1]:"), Ipv6Port()),
            "tls" => Port(await server.WaitForLineAsync(" (TLS)"), TlsPort()),
            "prometheus" => Port(await server.WaitForLineAsync("Prometheus metrics on "), MetricsPort()),
            _ => server.EndPoint.Port.ToString(CultureInfo.InvariantCulture),
        };
        (string[] second, string address) = endpoint switch
        {
            "ipv6" => (["--port", port, "--bind", "::1"], $"[::1]:{port}"),
            "tls" => (["--port", "0", "--bind", "127.0.0.1", "--tls-port", port, .. tls], $"127.0.0.1:{port}"),
            "prometheus" => (["--port", "0", "--bind", "127.0.0.1", "--metrics-exporter", "prometheus", "--prometheus-port", port], $"127.0.0.1:{port}"),
            _ => (new[] { "--port", port, "--bind", "127.0.0.1" }, $"127.0.0.1:{port}"),
        };

        ProcessResult result = await ProcessRunner.RunAsync(BuiltPrograms.Dotnet, [BuiltPrograms.ServerDll, .. second, .. common], timeout: SecondServerExit);

        Assert.Equal(1, result.ExitCode);
        string line = Assert.Single(result.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("tinyserver: error: cannot listen: ", line, StringComparison.Ordinal);
        Assert.Contains(address, line, StringComparison.Ordinal);
        Assert.Contains("address already in use", line, StringComparison.Ordinal);
        Assert.DoesNotContain("ready", result.StandardOutput, StringComparison.Ordinal);

        // The first server still holds the port and answers every new connection on it.
        var target = new IPEndPoint(endpoint == "ipv6" ? IPAddress.IPv6Loopback : IPAddress.Loopback, int.Parse(port, CultureInfo.InvariantCulture));
        for (int i = 0; i < 6; i++)
        {
            switch (endpoint)
            {
                case "tls":
                    await using (RawConnection connection = await RawConnection.ConnectTlsAsync(target, SslProtocols.Tls13, certificate.Certificate))
                    {
                        Assert.Equal("WELCOME, I'm TinyServer not pressure", await connection.ReadLineAsync());
                    }

                    break;
                case "prometheus":
                    using (var http = new HttpClient { Timeout = Timeouts.Read })
                    {
                        Assert.Contains("tinyserver", await http.GetStringAsync(new Uri($"http://{address}/metrics")), StringComparison.Ordinal);
                    }

                    break;
                default:
                    await using (RawConnection connection = await RawConnection.OpenAsync(target))
                    {
                        await connection.SendAsync($"ECHO {i}\n");
                        Assert.Equal($"ECHO {i}", await connection.ReadLineAsync());
                    }

                    break;
            }
        }

        Assert.Equal(0, await server.StopAsync());
    }

    [Theory]
    [InlineData(TransportKind.Epoll)]
    [InlineData(TransportKind.Sockets)]
    public async Task A_restart_binds_the_port_while_the_last_connections_are_in_TIME_WAIT(TransportKind transport)
    {
        string[] common = ["--bind", "127.0.0.1", "--transport", transport == TransportKind.Epoll ? "epoll" : "sockets"];
        int port;
        await using (ServerProcess first = await ServerProcess.StartAsync(["--port", "0", .. common]))
        {
            port = first.EndPoint.Port;
            // QUIT: the server closes first, so its side of the connection waits in TIME_WAIT after the close.
            await using (RawConnection connection = await RawConnection.OpenAsync(first.EndPoint))
            {
                await connection.SendAsync("QUIT\n");
                Assert.Equal("BYE", await connection.ReadLineAsync());
                await connection.AssertClosedAsync();
            }

            Assert.Equal(0, await first.StopAsync());
        }

        Assert.True(InTimeWait(port), $"no connection from 127.0.0.1:{port} in TIME_WAIT (/proc/net/tcp): the test shows nothing");

        await using ServerProcess second = await ServerProcess.StartAsync(["--port", port.ToString(CultureInfo.InvariantCulture), .. common]);
        Assert.Equal(port, second.EndPoint.Port);
        await using RawConnection again = await RawConnection.OpenAsync(second.EndPoint);
        await again.SendAsync("ECHO again\n");
        Assert.Equal("ECHO again", await again.ReadLineAsync());
    }

    private static string Port(string line, Regex pattern)
    {
        Match match = pattern.Match(line);
        Assert.True(match.Success, $"no port in '{line}'");
        return match.Groups[1].Value;
    }

    /// <summary>True when /proc/net/tcp lists a socket on local port <paramref name="port"/> in TIME_WAIT (state 06).</summary>
    private static bool InTimeWait(int port)
    {
        string local = $":{port:X4}";
        return File.ReadLines("/proc/net/tcp").Skip(1)
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Any(fields => fields[1].EndsWith(local, StringComparison.Ordinal) && fields[3] == "06");
    }

    [GeneratedRegex(@"Listening on \[::1\]:(\d+)$")]
    private static partial Regex Ipv6Port();

    [GeneratedRegex(@"Listening on 127\.0\.0\.1:(\d+) \(TLS\)$")]
    private static partial Regex TlsPort();

    [GeneratedRegex(@"Prometheus metrics on http://127\.0\.0\.1:(\d+)/metrics$")]
    private static partial Regex MetricsPort();
}
