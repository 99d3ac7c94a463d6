using System.Diagnostics;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using TinyServer.Server;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Endpoints;

/// <summary>
/// What the TLS port does before a handshake is complete, on both transports: a plain-text client is told
/// <c>ERROR TLS_REQUIRED</c> at once, a silent one is closed at the handshake timeout, and each is counted.
/// </summary>
[Trait("Tier", "process")]
public sealed class TlsGateTests
{
    private static ServerOptions Tls(TransportKind transport, int handshakeTimeout = 10) => new()
    {
        TlsPort = 0,
        TlsCertificate = TestCertificate.Instance.Certificate,
        TlsHandshakeTimeoutSeconds = handshakeTimeout,
        Transport = transport,
    };

    [Theory]
    [InlineData(TransportKind.Epoll)]
    [InlineData(TransportKind.Sockets)]
    public async Task A_plain_text_line_on_the_tls_port_is_answered_tls_required_and_closed_at_once(TransportKind transport)
    {
        await using TestServer server = await TestServer.StartAsync(Tls(transport));
        using var meter = new MeterReader(server.Metrics.Meter);
        await using RawConnection client = await RawConnection.ConnectAsync(server.TlsEndPoint!);
        var clock = Stopwatch.StartNew();

        // "TIME\n" is five bytes, as long as a TLS record header: OpenSSL took it for one and waited for its body.
        await client.SendAsync("TIME\n");

        Assert.Equal(["ERROR TLS_REQUIRED"], await client.ReadLinesToEndAsync());
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"closed after {clock.Elapsed}, not at once");
        IReadOnlyDictionary<string, long> values = meter.Collect();
        Assert.Equal(1, values["tinyserver.connections.rejected{reason=tls_required}"]);
        Assert.Equal(0, values["tinyserver.connections.rejected{reason=tls_handshake}"]);
        Assert.Equal(1, values["tinyserver.errors{code=TLS_REQUIRED}"]);
        Assert.Equal("ERROR TLS_REQUIRED\n".Length, values["tinyserver.bytes.sent"]);
        Assert.Equal(0, server.Tracker.Accepted); // Never reached the protocol.
        Assert.Empty(server.Warnings);

        // The port still serves TLS.
        await using RawConnection tls = await RawConnection.ConnectTlsAsync(server.TlsEndPoint!, SslProtocols.Tls12, TestCertificate.Instance.Certificate);
        Assert.Equal("WELCOME, I'm TinyServer not pressure", await tls.ReadLineAsync());
        await tls.SendAsync("ECHO still tls\nQUIT\n");
        Assert.Equal(["ECHO still tls", "BYE"], await tls.ReadLinesToEndAsync());
    }

    [Theory]
    [InlineData(TransportKind.Epoll)]
    [InlineData(TransportKind.Sockets)]
    public async Task A_telnet_user_typing_on_the_tls_port_is_told_after_the_first_byte(TransportKind transport)
    {
        await using TestServer server = await TestServer.StartAsync(Tls(transport));
        await using RawConnection client = await RawConnection.ConnectAsync(server.TlsEndPoint!);

        await client.SendAsync("H"); // One keystroke: no TLS record starts with 'H'.

        Assert.Equal("ERROR TLS_REQUIRED", await client.ReadLineAsync());
        await client.SendAsync("ELP\r\n"); // Typed on after the reply: dropped, then the close.
        Assert.Empty(await client.ReadLinesToEndAsync());
        Assert.Empty(server.Warnings);
    }

    [Theory]
    [InlineData(TransportKind.Epoll)]
    [InlineData(TransportKind.Sockets)]
    public async Task A_client_that_sends_nothing_is_closed_at_the_handshake_timeout_without_a_byte(TransportKind transport)
    {
        await using TestServer server = await TestServer.StartAsync(Tls(transport, handshakeTimeout: 1));
        using var meter = new MeterReader(server.Metrics.Meter);
        var clock = Stopwatch.StartNew();
        await using RawConnection silent = await RawConnection.ConnectAsync(server.TlsEndPoint!);

        Assert.Empty(await silent.ReadLinesToEndAsync()); // Within Timeouts.Read, or it fails.
        Assert.InRange(clock.Elapsed.TotalSeconds, 0.9, 5);
        Assert.Equal(1, await meter.CountAsync("tinyserver.connections.rejected{reason=tls_handshake}", 1));
        Assert.Equal(0, meter.Collect()["tinyserver.connections.rejected{reason=tls_required}"]);
        Assert.Equal(0, server.Tracker.Accepted);
        Assert.Empty(server.Warnings);
    }

    [Theory]
    [InlineData(TransportKind.Epoll)]
    [InlineData(TransportKind.Sockets)]
    public async Task A_client_that_stalls_in_its_handshake_is_closed_at_the_handshake_timeout(TransportKind transport)
    {
        await using TestServer server = await TestServer.StartAsync(Tls(transport, handshakeTimeout: 1));
        using var meter = new MeterReader(server.Metrics.Meter);
        var clock = Stopwatch.StartNew();
        await using RawConnection stalled = await RawConnection.ConnectAsync(server.TlsEndPoint!);
        await stalled.SendAsync([0x16, 0x03, 0x01, 0x00, 0x40]); // The header of a ClientHello record, and no more.

        Assert.Empty(await stalled.ReadLinesToEndAsync());
        Assert.InRange(clock.Elapsed.TotalSeconds, 0.9, 5);
        Assert.Equal(1, await meter.CountAsync("tinyserver.connections.rejected{reason=tls_handshake}", 1));
        Assert.Empty(server.Warnings);
    }

    [Fact]
    public async Task The_tls_reasons_are_reported_from_the_start_and_only_with_a_tls_port()
    {
        await using TestServer tls = await TestServer.StartAsync(Tls(TransportKind.Epoll));
        using var tlsMeter = new MeterReader(tls.Metrics.Meter);
        IReadOnlyDictionary<string, long> values = tlsMeter.Collect();
        foreach (string reason in new[] { "tls_required", "tls_handshake", "tls_renegotiation" })
        {
            Assert.Equal(0, values[$"tinyserver.connections.rejected{{reason={reason}}}"]);
        }

        await using TestServer plain = await TestServer.StartAsync();
        using var plainMeter = new MeterReader(plain.Metrics.Meter);
        Assert.DoesNotContain(plainMeter.Collect().Keys, key => key.Contains("reason=tls_", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(TransportKind.Epoll)]
    [InlineData(TransportKind.Sockets)]
    public async Task A_reset_before_the_first_byte_logs_no_warning(TransportKind transport)
    {
        await using TestServer server = await TestServer.StartAsync(Tls(transport));
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(server.TlsEndPoint!).WaitAsync(Timeouts.Read);
        socket.LingerState = new LingerOption(true, 0);
        socket.Dispose(); // RST before any byte.

        await using RawConnection next = await RawConnection.ConnectTlsAsync(server.TlsEndPoint!, SslProtocols.Tls13, TestCertificate.Instance.Certificate);
        Assert.Equal("WELCOME, I'm TinyServer not pressure", await next.ReadLineAsync());
        Assert.Empty(server.Warnings);
    }

    [Theory]
    [InlineData(SslProtocols.Tls12, TransportKind.Epoll)]
    [InlineData(SslProtocols.Tls13, TransportKind.Epoll)]
    [InlineData(SslProtocols.Tls12, TransportKind.Sockets)]
    [InlineData(SslProtocols.Tls13, TransportKind.Sockets)]
    public async Task A_corrupt_record_after_the_handshake_closes_the_connection_without_a_warning_and_is_no_renegotiation(SslProtocols protocol, TransportKind transport)
    {
        await using TestServer server = await TestServer.StartAsync(Tls(transport));
        using var meter = new MeterReader(server.Metrics.Meter);
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(server.TlsEndPoint!).WaitAsync(Timeouts.Read);
        await using var tls = new SslStream(new NetworkStream(socket, ownsSocket: false));
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            EnabledSslProtocols = protocol,
            RemoteCertificateValidationCallback = (_, _, _, _) => true,
        }).WaitAsync(Timeouts.Read);
        byte[] banner = new byte[64];
        Assert.True(await tls.ReadAsync(banner).AsTask().WaitAsync(Timeouts.Read) > 0);

        // An application data record whose bytes were never encrypted: OpenSSL fails it with a fatal alert.
        byte[] record = [0x17, 0x03, 0x03, 0x00, 0x20, .. Enumerable.Repeat((byte)0x5A, 32)];
        await socket.SendAsync(record, SocketFlags.None).WaitAsync(Timeouts.Read);
        try
        {
            while (await tls.ReadAsync(banner).AsTask().WaitAsync(Timeouts.Read) > 0)
            {
            }
        }
        catch (IOException)
        {
            // The server's alert, or its close without close_notify: either way, closed.
        }

        await server.StopAsync(); // Every connection's middleware has finished: anything it logged is in.
        Assert.Empty(server.Warnings);
        Assert.Equal(0, meter.Collect()["tinyserver.connections.rejected{reason=tls_renegotiation}"]);
    }
}
