using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Text;
using TinyServer.Server;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Endpoints;

/// <summary>
/// The OpenSSL session path (TlsGate, TlsSession) driven from outside as a demanding client and an attacker would:
/// records cut into single bytes and packed many to a segment, a line across records, pipelining, the line limit,
/// every way a connection can end (close_notify, FIN alone, RST, an abort at each stage of the handshake, garbage
/// after a first 0x16), resumption, old protocol versions, KeyUpdate, the idle timeout and shutdown. On both
/// transports. A strict peer (python3's ssl with ragged EOFs reported) tells a close_notify from a bare FIN.
/// </summary>
[Trait("Tier", "process")]
public sealed class TlsSessionAdversarialTests
{
    private const string Banner = "WELCOME, I'm TinyServer not pressure";
    private const string Handshakes = "tinyserver.connections.rejected{reason=tls_handshake}";

    /// <summary>
    /// A strict TLS client over memory BIOs (python3 -c SCRIPT PORT MODE ...). It prints one line per session: the
    /// clear text received (repr) and how the session ended: close_notify, truncated (FIN without close_notify),
    /// reset, or timeout.
    /// </summary>
    private const string StrictClient = """
        import socket, ssl, sys
        port, mode = int(sys.argv[1]), sys.argv[2]
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
        def session():
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            i, o = ssl.MemoryBIO(), ssl.MemoryBIO()
            t = ctx.wrap_bio(i, o)
            while True:
                try:
                    t.do_handshake(); s.sendall(o.read()); return s, t, i, o
                except ssl.SSLWantReadError:
                    s.sendall(o.read()); d = s.recv(65536)
                    if not d: raise Exception("EOF during the handshake")
                    i.write(d)
        def send(s, t, o, data): t.write(data); s.sendall(o.read())
        def close_notify(s, t, o):
            try: t.unwrap()
            except ssl.SSLWantReadError: pass
            s.sendall(o.read())
        def to_end(s, t, i):
            got = b""
            while True:
                try:
                    r = t.read(65536)
                    if not r: return got, "close_notify"
                    got += r; continue
                except ssl.SSLWantReadError: pass
                except ssl.SSLZeroReturnError: return got, "close_notify"
                try: d = s.recv(65536)
                except socket.timeout: return got, "timeout"
                except ConnectionResetError: return got, "reset"
                if not d:
                    i.write_eof()
                    try: r = t.read(65536)
                    except ssl.SSLZeroReturnError: return got, "close_notify"
                    except ssl.SSLError: return got, "truncated"
                    return got + r, "close_notify" if not r else "truncated"
                i.write(d)
        def report(got, end): print(repr(got.decode()), end, flush=True)
        if mode == "pipelined":
            n = int(sys.argv[3]); s, t, i, o = session()
            send(s, t, o, b"".join(b"ECHO %d\n" % k for k in range(n)))
            close_notify(s, t, o); s.shutdown(socket.SHUT_WR); report(*to_end(s, t, i))
        elif mode == "fin":
            s, t, i, o = session(); send(s, t, o, b"ECHO before the fin\n"); s.shutdown(socket.SHUT_WR); report(*to_end(s, t, i))
        elif mode == "quit":
            s, t, i, o = session(); send(s, t, o, b"ECHO a\nQUIT\n"); report(*to_end(s, t, i))
        elif mode == "wait":
            n = int(sys.argv[3]); sessions = [session() for _ in range(n)]
            for k, (s, t, i, o) in enumerate(sessions):
                if k % 3 == 0: send(s, t, o, b"ECHO half a line")
                if k % 3 == 1: t.write(b"ECHO in half a record\n"); r = o.read(); s.sendall(r[:len(r) // 2])
            print("READY", flush=True)
            for s, t, i, o in sessions: report(*to_end(s, t, i))
        """;

    public static TheoryData<TransportKind, SslProtocols> Transports_and_versions => new()
    {
        { TransportKind.Epoll, SslProtocols.Tls13 },
        { TransportKind.Epoll, SslProtocols.Tls12 },
        { TransportKind.Sockets, SslProtocols.Tls13 },
        { TransportKind.Sockets, SslProtocols.Tls12 },
    };

    [Theory]
    [MemberData(nameof(Transports_and_versions))]
    public async Task A_client_writing_one_byte_per_segment_completes_its_handshake_and_is_answered(TransportKind transport, SslProtocols protocol)
    {
        await using TestServer server = await TestServer.StartAsync(Tls(transport));
        using Client client = await Client.ConnectAsync(server.TlsEndPoint!, protocol, new Trickle());

        Assert.Equal(Banner, await client.ReadLineAsync());
        await client.WriteAsync("ECHO one byte at a time\nHELP\n");
        Assert.Equal("ECHO one byte at a time", await client.ReadLineAsync());
        Assert.Equal("HELP TIME | ECHO <text> | HELP | QUIT", await client.ReadLineAsync());
        await client.WriteAsync("QUIT\n");
        Assert.Equal(["BYE"], await client.ReadToEndAsync());
        await server.WaitForAllClosedAsync(1);
        Assert.Empty(server.Warnings);
    }

    [Theory]
    [MemberData(nameof(Transports_and_versions))]
    public async Task Two_thousand_records_in_one_segment_are_each_answered_in_order(TransportKind transport, SslProtocols protocol)
    {
        await using TestServer server = await TestServer.StartAsync(Tls(transport));
        var hold = new Trickle();
        using Client client = await Client.ConnectAsync(server.TlsEndPoint!, protocol, hold);
        Assert.Equal(Banner, await client.ReadLineAsync());
        hold.Hold = true;

        for (int i = 0; i < 2000; i++)
        {
            await client.WriteAsync($"ECHO {i}\n"); // One record each, held back.
        }

        await hold.ReleaseAsync(); // All of them in one send.
        for (int i = 0; i < 2000; i++)
        {
            Assert.Equal($"ECHO {i}", await client.ReadLineAsync());
        }

        Assert.Empty(server.Warnings);
    }

    [Theory]
    [MemberData(nameof(Transports_and_versions))]
    public async Task Lines_sent_one_byte_per_record_all_in_one_segment_are_answered(TransportKind transport, SslProtocols protocol)
    {
        await using TestServer server = await TestServer.StartAsync(Tls(transport));
        var hold = new Trickle();
        using Client client = await Client.ConnectAsync(server.TlsEndPoint!, protocol, hold);
        Assert.Equal(Banner, await client.ReadLineAsync());
        string[] lines = ["ECHO short", "ECHO " + new string('m', 9_000), "ECHO " + string.Concat(Enumerable.Repeat("0123456789", 500)), "TIME"];

        hold.Hold = true;
        foreach (byte b in Encoding.ASCII.GetBytes(string.Join('\n', lines) + "\n"))
        {
            await client.WriteAsync(((char)b).ToString()); // A record of one byte each: some 14,000 records.
        }

        await hold.ReleaseAsync();
        foreach (string line in lines[..^1])
        {
            Assert.Equal(line, await client.ReadLineAsync());
        }

        Assert.StartsWith("TIME ", await client.ReadLineAsync(), StringComparison.Ordinal);
        Assert.Empty(server.Warnings);
    }

    [Theory]
    [MemberData(nameof(Transports_and_versions))]
    public async Task A_line_spanning_full_16_KiB_records_is_echoed_whole(TransportKind transport, SslProtocols protocol)
    {
        await using TestServer server = await TestServer.StartAsync(Tls(transport) with { MaxLineLength = 65_536 });
        using Client client = await Client.ConnectAsync(server.TlsEndPoint!, protocol, new Trickle());
        Assert.Equal(Banner, await client.ReadLineAsync());
        string text = string.Concat(Enumerable.Range(0, 6_000).Select(i => (char)('a' + (i % 26)))) + new string('z', 59_000);

        await client.WriteAsync($"ECHO {text}\n"); // 65,006 bytes: four full records and a fifth.
        Assert.Equal($"ECHO {text}", await client.ReadLineAsync());
        await client.WriteAsync("ECHO after\n");
        Assert.Equal("ECHO after", await client.ReadLineAsync());
        Assert.Empty(server.Warnings);
    }

    [Theory]
    [InlineData(TransportKind.Epoll, 0, "ECHO")]
    [InlineData(TransportKind.Epoll, -1, "ECHO")]
    [InlineData(TransportKind.Epoll, 1, "ERROR LINE_TOO_LONG")]
    [InlineData(TransportKind.Sockets, 0, "ECHO")]
    [InlineData(TransportKind.Sockets, -1, "ECHO")]
    [InlineData(TransportKind.Sockets, 1, "ERROR LINE_TOO_LONG")]
    public async Task The_line_limit_holds_over_tls_as_in_plain_text(TransportKind transport, int overLimit, string expected)
    {
        const int limit = 20_000; // Above one record: the session's read buffer has to grow to hold the line.
        await using TestServer server = await TestServer.StartAsync(Tls(transport) with { MaxLineLength = limit });
        using Client client = await Client.ConnectAsync(server.TlsEndPoint!, SslProtocols.Tls13, new Trickle());
        Assert.Equal(Banner, await client.ReadLineAsync());
        string line = "ECHO " + new string('x', limit - 5 + overLimit);

        await client.WriteAsync(line + "\n");
        if (expected == "ECHO")
        {
            Assert.Equal(line, await client.ReadLineAsync());
            await client.WriteAsync("QUIT\n");
            Assert.Equal(["BYE"], await client.ReadToEndAsync());
        }
        else
        {
            Assert.Equal([expected], await client.ReadToEndAsync());
        }

        Assert.Empty(server.Warnings);
    }

    [Theory]
    [InlineData(TransportKind.Epoll, 1)]
    [InlineData(TransportKind.Epoll, 10_000)]
    [InlineData(TransportKind.Sockets, 1)]
    [InlineData(TransportKind.Sockets, 10_000)]
    [InlineData(TransportKind.Epoll, 100_000)]
    [InlineData(TransportKind.Sockets, 100_000)]
    public async Task Pipelined_lines_then_close_notify_and_fin_get_every_reply_in_order_then_close_notify(TransportKind transport, int count)
    {
        await using TestServer server = await TestServer.StartAsync(Tls(transport));
        (string text, string end) = Assert.Single(await StrictAsync(server, "pipelined", count.ToString(System.Globalization.CultureInfo.InvariantCulture)));

        string[] lines = text.Split('\n');
        Assert.Equal(count + 2, lines.Length);
        Assert.Equal(Banner, lines[0]);
        Assert.Equal(Enumerable.Range(0, count).Select(i => $"ECHO {i}"), lines[1..^1]);
        Assert.Equal("close_notify", end); // Not a bare FIN: a strict client would take that for a truncation.
        await server.WaitForAllClosedAsync(1);
        Assert.Empty(server.Warnings);
    }

    [Theory]
    [InlineData(TransportKind.Epoll)]
    [InlineData(TransportKind.Sockets)]
    public async Task A_fin_without_close_notify_ends_the_session_cleanly_after_the_replies_with_close_notify(TransportKind transport)
    {
        await using TestServer server = await TestServer.StartAsync(Tls(transport));
        (string text, string end) = Assert.Single(await StrictAsync(server, "fin"));

        Assert.Equal($"{Banner}\nECHO before the fin\n", text);
        Assert.Equal("close_notify", end);
        await server.WaitForAllClosedAsync(1);
        Assert.Empty(server.Warnings);
    }

    [Theory]
    [InlineData(TransportKind.Epoll)]
    [InlineData(TransportKind.Sockets)]
    public async Task Quit_over_tls_ends_with_bye_then_close_notify(TransportKind transport)
    {
        await using TestServer server = await TestServer.StartAsync(Tls(transport));
        Assert.Equal([($"{Banner}\nECHO a\nBYE\n", "close_notify")], await StrictAsync(server, "quit"));
        await server.WaitForAllClosedAsync(1);
        Assert.Empty(server.Warnings);
    }

    [Theory]
    [InlineData(TransportKind.Epoll)]
    [InlineData(TransportKind.Sockets)]
    public async Task A_reset_in_the_middle_of_a_record_ends_the_session_without_a_warning(TransportKind transport)
    {
        await using TestServer server = await TestServer.StartAsync(Tls(transport));
        var hold = new Trickle();
        using (Client client = await Client.ConnectAsync(server.TlsEndPoint!, SslProtocols.Tls13, hold))
        {
            Assert.Equal(Banner, await client.ReadLineAsync());
            hold.Hold = true;
            await client.WriteAsync("ECHO " + new string('r', 3000) + "\n");
            await hold.ReleaseAsync(keep: 1000); // A third of the record, then the reset.
            client.Reset();
        }

        await server.WaitForAllClosedAsync(1);
        using Client next = await Client.ConnectAsync(server.TlsEndPoint!, SslProtocols.Tls13, new Trickle());
        Assert.Equal(Banner, await next.ReadLineAsync());
        Assert.Empty(server.Warnings);
    }

    [Theory]
    [InlineData(TransportKind.Epoll)]
    [InlineData(TransportKind.Sockets)]
    public async Task Garbage_after_a_first_handshake_byte_is_closed_and_counted_as_a_failed_handshake(TransportKind transport)
    {
        await using TestServer server = await TestServer.StartAsync(Tls(transport));
        using var meter = new MeterReader(server.Metrics.Meter);
        byte[][] attacks =
        [
            [0x16, .. RandomBytes(300, seed: 1)], // Random bytes after a handshake content type.
            [0x16, 0x03, 0x01, 0xFF, 0xFF, .. RandomBytes(100, seed: 2)], // A record longer than any record.
            [0x16, 0x03, 0x01, 0xFF, 0xFF, .. RandomBytes(65_535, seed: 3)], // And all of it sent.
            [0x16, 0x09, 0x09, 0x00, 0x05, .. "hello"u8], // An unknown record version.
            [0x16, 0x03, 0x01, 0x00, 0x01, 0x01, 0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28], // A hello cut short, then an alert.
        ];

        for (int i = 0; i < attacks.Length; i++)
        {
            using var socket = await ConnectAsync(server.TlsEndPoint!);
            await socket.SendAsync(attacks[i], SocketFlags.None).WaitAsync(Timeouts.Read);
            await AssertEndsAsync(socket, $"attack {i}");
        }

        using (var cut = await ConnectAsync(server.TlsEndPoint!))
        {
            await cut.SendAsync(new byte[] { 0x16, 0x03 }, SocketFlags.None).WaitAsync(Timeouts.Read); // Half a record header,
            cut.Shutdown(SocketShutdown.Send); // then FIN.
            await AssertEndsAsync(cut, "truncated header");
        }

        Assert.Equal(attacks.Length + 1, await meter.CountAsync(Handshakes, attacks.Length + 1));
        Assert.Equal(0, server.Tracker.Accepted); // None reached the protocol.
        await AssertServesAsync(server);
        Assert.Empty(server.Warnings);
    }

    [Theory]
    [InlineData(TransportKind.Epoll)]
    [InlineData(TransportKind.Sockets)]
    public async Task An_abort_at_any_stage_of_the_handshake_is_counted_once_and_leaves_nothing_behind(TransportKind transport)
    {
        await using TestServer server = await TestServer.StartAsync(Tls(transport));
        using var meter = new MeterReader(server.Metrics.Meter);
        int aborts = 0;
        foreach (Stage stage in Enum.GetValues<Stage>())
        {
            foreach (bool reset in new[] { false, true })
            {
                var hold = new Trickle { StopAt = stage };
                Socket socket = await ConnectAsync(server.TlsEndPoint!);
                var tls = new SslStream(hold.Wrap(new NetworkStream(socket, ownsSocket: false)));
                Task handshake = tls.AuthenticateAsClientAsync(ClientOptions(SslProtocols.Tls13));
                await hold.Stopped.WaitAsync(Timeouts.Read); // The client's messages up to the stage were sent, no more.
                if (reset)
                {
                    socket.LingerState = new LingerOption(true, 0);
                    socket.Dispose();
                }
                else
                {
                    socket.Shutdown(SocketShutdown.Send);
                }

                // The client's own handshake may fail or (its Finished dropped) believe it succeeded: either way it ends.
                await Task.WhenAny(handshake, Task.Delay(Timeouts.Read));
                Assert.True(handshake.IsCompleted, $"{stage}, reset {reset}: the client's handshake never ended");
                _ = handshake.Exception;
                tls.Dispose();
                socket.Dispose();
                aborts++;
                Assert.Equal(aborts, await meter.CountAsync(Handshakes, aborts));
            }
        }

        Assert.Equal(0, server.Tracker.Accepted);
        await AssertServesAsync(server);
        Assert.Equal(aborts, meter.Collect()[Handshakes]); // The served session is not counted.
        Assert.Empty(server.Warnings);
    }

    [Theory]
    [InlineData(TransportKind.Epoll, "-tls1_3")]
    [InlineData(TransportKind.Epoll, "-tls1_2")]
    [InlineData(TransportKind.Sockets, "-tls1_3")]
    [InlineData(TransportKind.Sockets, "-tls1_2")]
    public async Task A_session_is_resumed_from_its_ticket(TransportKind transport, string version)
    {
        await using TestServer server = await TestServer.StartAsync(Tls(transport));
        string session = Path.Combine(TestCertificate.Instance.Directory, $"session-{Guid.NewGuid():N}.pem");
        try
        {
            string first = await SClientAsync(server, [version, "-sess_out", session, "-ign_eof"], "ECHO first\nQUIT\n");
            Assert.Contains("\nNew, TLSv1.", first, StringComparison.Ordinal);
            Assert.Contains("\nBYE\n", first, StringComparison.Ordinal);
            string second = await SClientAsync(server, [version, "-sess_in", session, "-ign_eof"], "ECHO second\nQUIT\n");
            Assert.Contains("\nReused, TLSv1.", second, StringComparison.Ordinal);
            Assert.Contains("\nECHO second\nBYE\n", second, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(session);
        }

        Assert.Empty(server.Warnings);
    }

    [Theory]
    [InlineData(TransportKind.Epoll, "-tls1_1")]
    [InlineData(TransportKind.Epoll, "-tls1")]
    [InlineData(TransportKind.Sockets, "-tls1_1")]
    [InlineData(TransportKind.Sockets, "-tls1")]
    public async Task A_client_offering_only_an_old_tls_version_is_refused_and_counted(TransportKind transport, string version)
    {
        await using TestServer server = await TestServer.StartAsync(Tls(transport));
        using var meter = new MeterReader(server.Metrics.Meter);
        ProcessResult result = await ProcessRunner.RunAsync(ProcessRunner.RequireTool("openssl"),
            ["s_client", "-connect", $"127.0.0.1:{server.TlsEndPoint!.Port}", version, "-cipher", "DEFAULT@SECLEVEL=0", "-ign_eof"], "TIME\n", Timeouts.Read);

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("alert protocol version", result.StandardError, StringComparison.Ordinal); // The server's refusal, not the client's own.
        Assert.DoesNotContain("TIME ", result.StandardOutput, StringComparison.Ordinal);
        Assert.Equal(1, await meter.CountAsync(Handshakes, 1));
        Assert.Empty(server.Warnings);
    }

    [Theory]
    [InlineData(TransportKind.Epoll, "TLS_AES_128_GCM_SHA256")]
    [InlineData(TransportKind.Epoll, "TLS_CHACHA20_POLY1305_SHA256")]
    [InlineData(TransportKind.Sockets, "TLS_AES_256_GCM_SHA384")]
    [InlineData(TransportKind.Sockets, "TLS_CHACHA20_POLY1305_SHA256")]
    public async Task Key_updates_from_the_client_asked_for_or_not_leave_the_session_working(TransportKind transport, string suite)
    {
        await using TestServer server = await TestServer.StartAsync(Tls(transport));
        using System.Diagnostics.Process openssl = ProcessRunner.Start(ProcessRunner.RequireTool("openssl"),
            ["s_client", "-connect", $"127.0.0.1:{server.TlsEndPoint!.Port}", "-tls1_3", "-ciphersuites", suite, "-msg"]);
        try
        {
            var seen = new StringBuilder();
            await SendAndWaitAsync(openssl, "ECHO start\n", "ECHO start", seen);
            for (int i = 1; i <= 3; i++)
            {
                // s_client drops what follows a command in the same read: the next line waits until it says KEYUPDATE.
                await KeyUpdateAsync(openssl, "k\n"); // KeyUpdate, no reply asked.
                await SendAndWaitAsync(openssl, $"ECHO k{i}\n", $"ECHO k{i}", seen);
                await KeyUpdateAsync(openssl, "K\n"); // KeyUpdate, the server's asked for.
                await SendAndWaitAsync(openssl, $"ECHO K{i}\n", $"ECHO K{i}", seen);
            }

            await SendAndWaitAsync(openssl, "quit\n", "BYE", seen);
            await openssl.WaitForExitAsync().WaitAsync(Timeouts.Read);
            seen.Append(await openssl.StandardOutput.ReadToEndAsync().WaitAsync(Timeouts.Read));
            string output = seen.ToString();
            Assert.Contains($"Cipher is {suite}", output, StringComparison.Ordinal);
            Assert.DoesNotContain("ERROR", output, StringComparison.Ordinal); // No 'k' reached the server as a line.
            Assert.Equal(6, Count(output, ">>> TLS 1.3, Handshake [length 0005], KeyUpdate"));
            Assert.Equal(3, Count(output, "<<< TLS 1.3, Handshake [length 0005], KeyUpdate"));
        }
        finally
        {
            if (!openssl.HasExited)
            {
                openssl.Kill();
            }
        }

        await server.WaitForAllClosedAsync(1);
        Assert.Empty(server.Warnings);
    }

    [Theory]
    [InlineData(TransportKind.Epoll)]
    [InlineData(TransportKind.Sockets)]
    public async Task The_idle_timeout_while_a_tls_read_waits_sends_idle_timeout_then_close_notify(TransportKind transport)
    {
        await using TestServer server = await TestServer.StartAsync(Tls(transport) with { IdleTimeoutSeconds = 1 });
        List<(string Text, string End)> sessions = await StrictAsync(server, "wait", "3"); // Half a line, half a record, nothing.

        Assert.Equal(Enumerable.Repeat(($"{Banner}\nERROR IDLE_TIMEOUT\n", "close_notify"), 3), sessions);
        await server.WaitForAllClosedAsync(3);
        Assert.Empty(server.Warnings);
    }

    [Theory]
    [InlineData(TransportKind.Epoll)]
    [InlineData(TransportKind.Sockets)]
    public async Task Shutdown_sends_every_tls_session_shutting_down_then_close_notify(TransportKind transport)
    {
        TestServer server = await TestServer.StartAsync(Tls(transport));
        try
        {
            using System.Diagnostics.Process python = ProcessRunner.Start(ProcessRunner.RequireTool("python3"),
                ["-c", StrictClient, server.TlsEndPoint!.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "wait", "12"]);
            try
            {
                Task<string> errors = python.StandardError.ReadToEndAsync();
                Assert.Equal("READY", await python.StandardOutput.ReadLineAsync().WaitAsync(Timeouts.Read));

                // A TLS 1.3 client is done with its handshake before the server has read its Finished: until the server
                // has, shutdown closes the connection at once (TlsGate), with no banner. Every session is served first.
                using (var deadline = new CancellationTokenSource(Timeouts.Read))
                {
                    while (server.Tracker.Active < 12)
                    {
                        await Task.Delay(20, deadline.Token);
                    }
                }

                await server.StopAsync();
                await python.WaitForExitAsync().WaitAsync(Timeouts.Read);
                string output = await python.StandardOutput.ReadToEndAsync().WaitAsync(Timeouts.Read);
                Assert.Equal("", await errors.WaitAsync(Timeouts.Read));
                Assert.Equal(Enumerable.Repeat(($"{Banner}\nERROR SHUTTING_DOWN\n", "close_notify"), 12), Sessions(output));
            }
            finally
            {
                if (!python.HasExited)
                {
                    python.Kill();
                }
            }

            Assert.Equal(12, server.Tracker.Drained);
            Assert.Empty(server.Warnings);
        }
        finally
        {
            await server.DisposeAsync();
        }
    }

    private static ServerOptions Tls(TransportKind transport) => new()
    {
        Transport = transport,
        TlsPort = 0,
        TlsCertificate = TestCertificate.Instance.Certificate,
        TlsHandshakeTimeoutSeconds = 10,
    };

    private static SslClientAuthenticationOptions ClientOptions(SslProtocols protocol) => new()
    {
        TargetHost = "localhost",
        EnabledSslProtocols = protocol,
        RemoteCertificateValidationCallback = (_, certificate, _, _) => certificate is not null && certificate.GetCertHashString() == TestCertificate.Instance.Certificate.GetCertHashString(),
    };

    private static async Task<Socket> ConnectAsync(IPEndPoint endPoint)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(endPoint).WaitAsync(Timeouts.Read);
        return socket;
    }

    /// <summary>The server ends the connection (FIN or RST) within Timeouts.Read; whatever it sent (an alert) is read and dropped.</summary>
    private static async Task AssertEndsAsync(Socket socket, string what)
    {
        var buffer = new byte[70_000];
        using var deadline = new CancellationTokenSource(Timeouts.Read);
        try
        {
            while (await socket.ReceiveAsync(buffer, SocketFlags.None, deadline.Token) > 0)
            {
            }
        }
        catch (SocketException)
        {
            // A reset ends it too.
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"{what}: the server did not close the connection");
        }
    }

    private static async Task AssertServesAsync(TestServer server)
    {
        using Client client = await Client.ConnectAsync(server.TlsEndPoint!, SslProtocols.Tls13, new Trickle());
        Assert.Equal(Banner, await client.ReadLineAsync());
    }

    private static byte[] RandomBytes(int count, int seed)
    {
        var bytes = new byte[count];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static async Task<List<(string Text, string End)>> StrictAsync(TestServer server, params string[] mode)
    {
        ProcessResult result = await ProcessRunner.RunAsync(ProcessRunner.RequireTool("python3"),
            ["-c", StrictClient, server.TlsEndPoint!.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), .. mode], timeout: Timeouts.Read);
        Assert.True(result.ExitCode == 0, result.StandardError);
        return Sessions(result.StandardOutput);
    }

    /// <summary>The strict client's lines: a Python repr of the text received, and how the session ended.</summary>
    private static List<(string Text, string End)> Sessions(string output)
    {
        var sessions = new List<(string, string)>();
        foreach (string line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line == "READY")
            {
                continue;
            }

            int split = line.LastIndexOf(' ');
            string quoted = line[..split];
            sessions.Add((quoted[1..^1].Replace("\\n", "\n", StringComparison.Ordinal).Replace("\\'", "'", StringComparison.Ordinal), line[(split + 1)..]));
        }

        return sessions;
    }

    private static async Task<string> SClientAsync(TestServer server, string[] options, string input)
    {
        ProcessResult result = await ProcessRunner.RunAsync(ProcessRunner.RequireTool("openssl"),
            ["s_client", "-connect", $"127.0.0.1:{server.TlsEndPoint!.Port}", .. options], input, Timeouts.Read);
        Assert.True(result.ExitCode == 0, result.StandardError);
        return result.StandardOutput;
    }

    private static async Task SendAndWaitAsync(System.Diagnostics.Process process, string input, string line, StringBuilder seen)
    {
        await process.StandardInput.WriteAsync(input);
        await process.StandardInput.FlushAsync();
        string? read;
        while ((read = await process.StandardOutput.ReadLineAsync().WaitAsync(Timeouts.Read)) is not null)
        {
            seen.Append(read).Append('\n');
            if (read == line)
            {
                return;
            }
        }

        Assert.Fail($"s_client ended before {line}: {seen}");
    }

    private static async Task KeyUpdateAsync(System.Diagnostics.Process openssl, string command)
    {
        await openssl.StandardInput.WriteAsync(command);
        await openssl.StandardInput.FlushAsync();
        string? line;
        while ((line = await openssl.StandardError.ReadLineAsync().WaitAsync(Timeouts.Read)) is not null && line != "KEYUPDATE")
        {
        }

        Assert.Equal("KEYUPDATE", line);
    }

    private static int Count(string text, string part)
    {
        int count = 0;
        for (int at = text.IndexOf(part, StringComparison.Ordinal); at >= 0; at = text.IndexOf(part, at + 1, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }

    /// <summary>How far the client's handshake gets before it stops: its messages up to there are sent, no more.</summary>
    private enum Stage
    {
        /// <summary>After the first byte of its ClientHello.</summary>
        FirstByte,

        /// <summary>After half its ClientHello.</summary>
        HalfHello,

        /// <summary>After its whole ClientHello, its Finished not yet written.</summary>
        Hello,

        /// <summary>After half its Finished flight (TLS 1.3: its second write).</summary>
        HalfFinished,
    }

    /// <summary>
    /// What the client's SslStream writes, sent one byte per segment (TCP_NODELAY); or held back (<see cref="Hold"/>)
    /// until released in one send; or, with <see cref="StopAt"/>, sent up to a stage of the handshake and no further.
    /// </summary>
    private sealed class Trickle
    {
        private readonly List<byte> _held = [];
        private Socket? _socket;
        private int _writes;

        public bool Hold { get; set; }

        public Stage? StopAt { get; init; }

        public Task Stopped => _stopped.Task;

        private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Stream Wrap(NetworkStream inner)
        {
            _socket = inner.Socket;
            return new Wrapper(this, inner);
        }

        public async Task ReleaseAsync(int keep = 0)
        {
            byte[] bytes = [.. _held];
            _held.Clear();
            Hold = false;
            await _socket!.SendAsync(bytes.AsMemory(0, bytes.Length - keep)).AsTask().WaitAsync(Timeouts.Read);
        }

        private async Task WriteAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
        {
            _writes++;
            if (StopAt is { } stop)
            {
                if (_stopped.Task.IsCompleted)
                {
                    return; // Past the stage: dropped.
                }

                int take = (stop, _writes) switch
                {
                    (Stage.FirstByte, _) => 1,
                    (Stage.HalfHello, _) or (Stage.HalfFinished, 2) => bytes.Length / 2,
                    _ => bytes.Length,
                };
                await _socket!.SendAsync(bytes[..take], cancellationToken);
                if (stop != Stage.HalfFinished || _writes == 2)
                {
                    _stopped.TrySetResult();
                }

                return;
            }

            if (Hold)
            {
                _held.AddRange(bytes.Span);
                return;
            }

            for (int i = 0; i < bytes.Length; i++)
            {
                await _socket!.SendAsync(bytes.Slice(i, 1), cancellationToken);
            }
        }

        private sealed class Wrapper(Trickle trickle, NetworkStream inner) : Stream
        {
            public override bool CanRead => true;

            public override bool CanSeek => false;

            public override bool CanWrite => true;

            public override long Length => throw new NotSupportedException();

            public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

            public override void Flush()
            {
            }

            public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);

            public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => inner.ReadAsync(buffer, cancellationToken);

            public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.ReadAsync(buffer, offset, count, cancellationToken);

            public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => new(trickle.WriteAsync(buffer, cancellationToken));

            public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => trickle.WriteAsync(buffer.AsMemory(offset, count), cancellationToken);

            public override void Write(byte[] buffer, int offset, int count) => trickle.WriteAsync(buffer.AsMemory(offset, count), CancellationToken.None).GetAwaiter().GetResult();

            public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

            public override void SetLength(long value) => throw new NotSupportedException();
        }
    }

    /// <summary>An SslStream client over a <see cref="Trickle"/>: lines in, text out, every wait bounded.</summary>
    private sealed class Client : IDisposable
    {
        private readonly Socket _socket;
        private readonly SslStream _tls;
        private readonly List<byte> _received = [];
        private readonly byte[] _buffer = new byte[64 * 1024];

        private Client(Socket socket, SslStream tls)
        {
            _socket = socket;
            _tls = tls;
        }

        public static async Task<Client> ConnectAsync(IPEndPoint endPoint, SslProtocols protocol, Trickle trickle)
        {
            Socket socket = await TlsSessionAdversarialTests.ConnectAsync(endPoint);
            var tls = new SslStream(trickle.Wrap(new NetworkStream(socket, ownsSocket: false)));
            await tls.AuthenticateAsClientAsync(ClientOptions(protocol)).WaitAsync(Timeouts.Read);
            Assert.Equal(protocol, tls.SslProtocol);
            return new Client(socket, tls);
        }

        public Task WriteAsync(string text) => _tls.WriteAsync(Encoding.UTF8.GetBytes(text)).AsTask().WaitAsync(Timeouts.Read);

        public async Task<string?> ReadLineAsync()
        {
            while (true)
            {
                int end = _received.IndexOf((byte)'\n');
                if (end >= 0)
                {
                    string line = Encoding.UTF8.GetString([.. _received.GetRange(0, end)]);
                    _received.RemoveRange(0, end + 1);
                    return line;
                }

                int read = await _tls.ReadAsync(_buffer).AsTask().WaitAsync(Timeouts.Read);
                if (read == 0)
                {
                    Assert.Empty(_received);
                    return null;
                }

                _received.AddRange(_buffer.AsSpan(0, read));
            }
        }

        public async Task<List<string>> ReadToEndAsync()
        {
            var lines = new List<string>();
            while (await ReadLineAsync() is { } line)
            {
                lines.Add(line);
            }

            return lines;
        }

        public void Reset()
        {
            _socket.LingerState = new LingerOption(true, 0);
            _socket.Close();
        }

        public void Dispose()
        {
            _tls.Dispose();
            _socket.Dispose();
        }
    }
}
