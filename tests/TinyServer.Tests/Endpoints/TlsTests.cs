using System.Diagnostics;
using System.Net.Sockets;
using System.Security.Authentication;
using TinyServer.Server;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Endpoints;

/// <summary>The TLS endpoint of the in-process server: the same protocol, TLS 1.2 and 1.3, the handshake timeout.</summary>
[Trait("Tier", "process")]
public sealed class TlsTests
{
    private static ServerOptions Tls(int handshakeTimeout = 10) => new()
    {
        TlsPort = 0,
        TlsCertificate = TestCertificate.Instance.Certificate,
        TlsHandshakeTimeoutSeconds = handshakeTimeout,
    };

    [Theory]
    [InlineData(SslProtocols.Tls12, TransportKind.Epoll)]
    [InlineData(SslProtocols.Tls13, TransportKind.Epoll)]
    [InlineData(SslProtocols.Tls12, TransportKind.Sockets)]
    [InlineData(SslProtocols.Tls13, TransportKind.Sockets)]
    public async Task The_protocol_over_tls_is_the_same_as_over_tcp(SslProtocols protocol, TransportKind transport)
    {
        await using TestServer server = await TestServer.StartAsync(Tls() with { Transport = transport });
        await using RawConnection client = await RawConnection.ConnectTlsAsync(server.TlsEndPoint!, protocol, TestCertificate.Instance.Certificate);

        Assert.Equal(protocol, client.TlsProtocol);
        Assert.Equal("WELCOME, I'm TinyServer not pressure", await client.ReadLineAsync());
        await client.SendAsync("ECHO over tls\nHELP\nFOO\ntime\nQUIT\n");
        List<string> lines = await client.ReadLinesToEndAsync();
        Assert.Equal(["ECHO over tls", "HELP TIME | ECHO <text> | HELP | QUIT", "ERROR UNKNOWN_COMMAND"], lines[..3]);
        Assert.StartsWith("TIME ", lines[3], StringComparison.Ordinal);
        Assert.Equal("BYE", lines[4]);
        Assert.Equal(5, lines.Count);
        Assert.Empty(server.Warnings);
    }

    [Fact]
    public async Task Plain_tcp_keeps_working_beside_tls_and_tls_ports_differ()
    {
        await using TestServer server = await TestServer.StartAsync(Tls());
        Assert.NotEqual(server.EndPoint.Port, server.TlsEndPoint!.Port);

        await using RawConnection plain = await RawConnection.OpenAsync(server.EndPoint);
        await using RawConnection tls = await RawConnection.ConnectTlsAsync(server.TlsEndPoint, SslProtocols.Tls13, TestCertificate.Instance.Certificate);
        Assert.Equal("WELCOME, I'm TinyServer not pressure", await tls.ReadLineAsync());
        await plain.SendAsync("ECHO plain\n");
        await tls.SendAsync("ECHO secret\n");
        Assert.Equal("ECHO plain", await plain.ReadLineAsync());
        Assert.Equal("ECHO secret", await tls.ReadLineAsync());
    }

    [Fact]
    public async Task A_plain_text_client_on_the_tls_port_gets_no_banner_only_tls_required_and_is_closed()
    {
        await using TestServer server = await TestServer.StartAsync(Tls());
        await using RawConnection client = await RawConnection.ConnectAsync(server.TlsEndPoint!);
        await client.SendAsync("TIME\nQUIT\n");

        // The server waits for a TLS ClientHello; plain text is told so in one clear-text line, then closed.
        Assert.Equal(["ERROR TLS_REQUIRED"], await client.ReadLinesToEndAsync());
        Assert.Equal(0, server.Tracker.Accepted);
        Assert.Empty(server.Warnings);
        await using RawConnection next = await RawConnection.ConnectTlsAsync(server.TlsEndPoint!, SslProtocols.Tls13, TestCertificate.Instance.Certificate);
        Assert.Equal("WELCOME, I'm TinyServer not pressure", await next.ReadLineAsync());
    }

    [Fact]
    public async Task A_client_that_never_starts_its_handshake_is_closed_after_the_handshake_timeout()
    {
        await using TestServer server = await TestServer.StartAsync(Tls(handshakeTimeout: 1));
        var clock = Stopwatch.StartNew();
        await using RawConnection silent = await RawConnection.ConnectAsync(server.TlsEndPoint!);

        await silent.AssertClosedAsync(); // Within Timeouts.Read, or it fails.
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(0.9), $"closed after {clock.Elapsed}, before the 1 s handshake timeout");
        Assert.Equal(0, server.Tracker.Accepted); // Never reached the protocol.
    }

    [Fact]
    public async Task All_endpoints_share_the_connection_limit()
    {
        string socket = TempSocket.NewPath();
        await using TestServer server = await TestServer.StartAsync(Tls() with { MaxConnections = 1, UnixSocketPath = socket });
        await using RawConnection first = await RawConnection.ConnectTlsAsync(server.TlsEndPoint!, SslProtocols.Tls13, TestCertificate.Instance.Certificate);
        Assert.Equal("WELCOME, I'm TinyServer not pressure", await first.ReadLineAsync());

        await using RawConnection plain = await RawConnection.ConnectAsync(server.EndPoint);
        Assert.Equal(["ERROR TOO_MANY_CONNECTIONS"], await plain.ReadLinesToEndAsync());
        await using RawConnection unix = await RawConnection.ConnectUnixAsync(socket);
        Assert.Equal(["ERROR TOO_MANY_CONNECTIONS"], await unix.ReadLinesToEndAsync());
        await using RawConnection tls = await RawConnection.ConnectTlsAsync(server.TlsEndPoint!, SslProtocols.Tls12, TestCertificate.Instance.Certificate);
        Assert.Equal(["ERROR TOO_MANY_CONNECTIONS"], await tls.ReadLinesToEndAsync());
        Assert.Equal(3, server.Tracker.Rejected);
    }

    [Theory]
    [InlineData(0, false)]
    [InlineData(1, true)]
    [InlineData(2, true)]
    [InlineData(299, true)]
    [InlineData(300, true)]
    [InlineData(301, false)]
    public void The_handshake_timeout_is_accepted_from_1_to_300_seconds(int seconds, bool accepted)
    {
        string[] args = ["--tls-handshake-timeout", seconds.ToString(System.Globalization.CultureInfo.InvariantCulture)];
        if (accepted)
        {
            Assert.Equal(seconds, ServerOptionsLoader.Load(args, new Dictionary<string, string>(), settingsFile: null)!.TlsHandshakeTimeoutSeconds);
        }
        else
        {
            OptionsException error = Assert.Throws<OptionsException>(() => ServerOptionsLoader.Load(args, new Dictionary<string, string>(), settingsFile: null));
            Assert.Contains("--tls-handshake-timeout", error.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_reset_during_the_handshake_logs_no_warning()
    {
        await using TestServer server = await TestServer.StartAsync(Tls());
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(server.TlsEndPoint!).WaitAsync(Timeouts.Read);
        await socket.SendAsync(new byte[] { 0x16, 0x03, 0x01, 0x00, 0x40 }, SocketFlags.None).WaitAsync(Timeouts.Read); // Half a ClientHello.
        socket.LingerState = new LingerOption(true, 0);
        socket.Dispose(); // RST.

        await using RawConnection next = await RawConnection.ConnectTlsAsync(server.TlsEndPoint!, SslProtocols.Tls13, TestCertificate.Instance.Certificate);
        Assert.Equal("WELCOME, I'm TinyServer not pressure", await next.ReadLineAsync());
        Assert.Empty(server.Warnings);
    }
}
