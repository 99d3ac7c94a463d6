using TinyServer.LoadGen.Tests.Infrastructure;
using TinyServer.Server;

namespace TinyServer.LoadGen.Tests;

/// <summary>
/// Connections that end are replaced (issue 11): after BYE, after ERROR SHUTTING_DOWN (whose requests are sent again),
/// after a close between requests. Requests in flight when a connection ends are lost (errors), and a server that is
/// gone for good ends the run with connect errors once --connect-timeout has passed.
/// </summary>
[Trait("Tier", "unit")]
public sealed class ReconnectTests
{
    private const string Echo = "ECHO hello\n";
    private const string ShuttingDown = "ERROR SHUTTING_DOWN\n";

    [Fact]
    public async Task Sessions_ended_by_bye_are_reconnects_not_errors()
    {
        await using TestServer server = await TestServer.StartAsync();

        RunOutput run = await LoadGenerator.RunJsonAsync(server.Port, "-n", "200", "-c", "2", "-P", "4", "--requests-per-session", "10");

        Assert.Equal(0, run.ExitCode);
        Assert.Equal(200, run.Number("requests"));
        Assert.Equal(20, run.Number("sessions"));
        Assert.Equal(18, run.Number("reconnects")); // The last session of each connection ends the run: no redial.
        Assert.Equal(0, run.Number("lost"));
        Assert.Equal(0, run.Number("errors"));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public async Task A_request_answered_with_shutting_down_is_sent_again_on_a_new_connection(int pipeline)
    {
        // The first connection answers three requests, then ERROR SHUTTING_DOWN in place of the fourth reply, and
        // closes without reading what else was pipelined. The others answer everything.
        int answered = 0;
        await using var server = FakeServer.WithBanner((connection, line) =>
            connection > 0 ? Echo : Interlocked.Increment(ref answered) <= 3 ? Echo : ShuttingDown + FakeServer.AndClose);

        RunOutput run = await LoadGenerator.RunJsonAsync(server.Port, "-n", "40", "-c", "1", "-P", pipeline.ToString(System.Globalization.CultureInfo.InvariantCulture));

        Assert.True(run.ExitCode == 0, run.Output);
        Assert.Equal(40, run.Number("requests"));
        Assert.Equal(0, run.Number("errors"));
        Assert.Equal(1, run.Number("reconnects"));
        Assert.InRange(run.Number("resent"), 1, pipeline);
        Assert.Equal(0, run.Number("lost"));
    }

    [Fact]
    public async Task A_close_between_requests_is_a_reconnect_not_an_error()
    {
        // At 2 requests/s the first connection's reply to its second request, and its close, come long before the
        // third request is due: nothing is in flight when it ends.
        int answered = 0;
        await using var server = FakeServer.WithBanner((connection, line) =>
            connection == 0 && Interlocked.Increment(ref answered) == 2 ? Echo + FakeServer.AndClose : Echo);

        RunOutput run = await LoadGenerator.RunJsonAsync(server.Port, "-n", "4", "-c", "1", "--rate", "2");

        Assert.True(run.ExitCode == 0, run.Output);
        Assert.Equal(4, run.Number("requests"));
        Assert.Equal(1, run.Number("reconnects"));
        Assert.Equal(0, run.Number("lost"));
        Assert.Equal(0, run.Number("errors"));
    }

    [Fact]
    public async Task Requests_in_flight_when_the_server_closes_are_lost_and_not_sent_again()
    {
        // The first connection answers three requests and closes on reading the fourth.
        int answered = 0;
        int received = 0;
        await using var server = FakeServer.WithBanner((connection, line) =>
        {
            Interlocked.Increment(ref received);
            return connection > 0 || Interlocked.Increment(ref answered) <= 3 ? Echo : null;
        });

        RunOutput run = await LoadGenerator.RunJsonAsync(server.Port, "-n", "10", "-c", "1");

        Assert.Equal(1, run.ExitCode);
        Assert.Equal(1, run.Number("lost"));
        Assert.Equal(1, run.Errors("lost"));
        Assert.Equal(1, run.Number("errors"));
        Assert.Equal(9, run.Number("requests"));
        Assert.Equal(1, run.Number("reconnects"));
        Assert.Equal(0, run.Number("resent"));
        Assert.Equal(10, Volatile.Read(ref received)); // The lost request was not sent again.
    }

    [Fact]
    public async Task A_server_gone_for_good_ends_the_run_with_connect_errors_after_the_connect_timeout()
    {
        // After five answers the server stops listening and closes every connection at its next request.
        int answered = 0;
        FakeServer? server = null;
        server = FakeServer.WithBanner((connection, line) =>
        {
            if (Interlocked.Increment(ref answered) <= 5)
            {
                return Echo;
            }

            server!.StopListening();
            return null;
        });
        await using (server)
        {
            RunOutput run = await LoadGenerator.RunJsonAsync(server.Port, "-d", "20", "-c", "2", "--connect-timeout", "1");

            Assert.Equal(1, run.ExitCode);
            Assert.True(run.Json.GetProperty("ended_early").GetBoolean(), run.Output); // It did not wait out -d 20.
            Assert.Equal(2, run.Errors("connect"));
            Assert.Equal(2, run.Json.GetProperty("connect_errors").GetProperty("connection refused").GetInt64());
            Assert.Equal(2, run.Number("lost")); // Each connection's request in flight at the close.
            Assert.Equal(0, run.Number("reconnects"));
            Assert.Equal(4, run.Number("errors"));
        }
    }

    [Fact]
    public async Task Connections_ended_by_shutting_down_before_any_answer_are_redialled_after_the_backoff_not_at_once()
    {
        // Every connection is greeted and its first request answered with ERROR SHUTTING_DOWN, for all of
        // --connect-timeout 2. The first redial goes at once; each later one waits --redial-backoff (50 ms), doubling up
        // to --redial-backoff-max (1 s): redials at 0, 0.05, 0.15, 0.35, 0.75 and 1.55 s after the first end, then the
        // next would be at 2.55 s, past the timeout. At most 1 + 1 + log2(1 / 0.05) + 2 / 1 (+ rounding) = 9 dials in
        // all; waits only ever come late, so a slow machine makes fewer, never more. A redial at once after every end
        // makes thousands.
        int dials = 0;
        await using var server = new FakeServer(
            connection =>
            {
                Interlocked.Increment(ref dials);
                return FakeServer.Banner;
            },
            line => ShuttingDown + FakeServer.AndClose);

        RunOutput run = await LoadGenerator.RunJsonAsync(server.Port, "-d", "20", "-c", "1", "--connect-timeout", "2");

        Assert.Equal(1, run.ExitCode);
        Assert.True(run.Json.GetProperty("ended_early").GetBoolean(), run.Output); // It did not reconnect for all of -d 20.
        // One connect error: "no reply on any reconnect within --connect-timeout", or, when the last redial was still
        // under way at the timeout on a slow machine, that redial's own reason.
        Assert.Equal(1, run.Errors("connect"));
        Assert.Equal(0, run.Number("requests"));
        Assert.Equal(0, run.Number("lost"));
        int made = Volatile.Read(ref dials);
        Assert.True(made is >= 2 and <= 9, $"{made} dials in {run.Number("reconnects")} reconnects: {run.Output}");
        Assert.InRange(run.Number("reconnects"), 1, made - 1); // Each dial after the first that was greeted in time.
    }

    [Fact]
    public async Task The_redial_backoff_starts_again_from_the_first_wait_once_a_request_is_answered()
    {
        // Even connections answer a request, then ERROR SHUTTING_DOWN in place of the next reply; odd ones answer their
        // first request with it. So each answered connection is followed by one ended before any reply (which waits
        // --redial-backoff 1.5 s), then an answered one. Reset by the answer, that wait is 1.5 s each time, within
        // --connect-timeout 3; doubled (not reset) the second one would be 3 s, not before the timeout: no redial, a
        // connect error. Waits only come late: the 1.5 s wait has 1.5 s to spare.
        int[] lines = new int[8];
        await using var server = FakeServer.WithBanner((connection, line) =>
            connection < lines.Length && connection % 2 == 0 && Interlocked.Increment(ref lines[connection]) == 1 ? Echo : ShuttingDown + FakeServer.AndClose);

        RunOutput run = await LoadGenerator.RunJsonAsync(
            server.Port, "-n", "3", "-c", "1", "--redial-backoff", "1.5", "--redial-backoff-max", "60", "--connect-timeout", "3");

        Assert.True(run.ExitCode == 0, run.Output);
        Assert.Equal(3, run.Number("requests"));
        Assert.Equal(0, run.Number("errors"));
        Assert.Equal(4, run.Number("reconnects")); // Connections 1 to 4; the third request is answered on the fourth.
        Assert.Equal(4, run.Number("resent"));
    }

    [Theory]
    [InlineData(false)] // Sessions of one request, ended by QUIT and BYE (--requests-per-session 1).
    [InlineData(true)] // Every connection answers one request, then ERROR SHUTTING_DOWN in place of the next reply.
    public async Task A_connection_that_answered_a_request_is_replaced_at_once_whatever_the_redial_backoff(bool notice)
    {
        // --redial-backoff 60 in a -n run with --timeout 10: a single wait before any of the 19 redials would leave
        // requests unsent at the timeout. Every connection answers a request before it ends, so none waits.
        int lines = 0;
        await using var server = FakeServer.WithBanner(line =>
            line == "QUIT" ? "BYE\n" + FakeServer.AndClose
            : notice && Interlocked.Increment(ref lines) % 2 == 0 ? ShuttingDown + FakeServer.AndClose
            : Echo);
        string[] churn = notice ? [] : ["--requests-per-session", "1"];

        RunOutput run = await LoadGenerator.RunJsonAsync(
            server.Port, ["-n", "20", "-c", "1", "--timeout", "10", "--redial-backoff", "60", "--redial-backoff-max", "60", "--connect-timeout", "60", .. churn]);

        Assert.True(run.ExitCode == 0, run.Output);
        Assert.Equal(20, run.Number("requests"));
        Assert.Equal(0, run.Number("errors"));
        Assert.Equal(19, run.Number("reconnects"));
        Assert.Equal(notice ? 19 : 0, run.Number("resent"));
    }

    [Fact]
    public async Task A_failed_redial_is_tried_again_after_the_redial_backoff()
    {
        // The first connection is closed at its first request; every later one before its banner (as a full server
        // does), so each redial fails and waits --redial-backoff. At 0.4 s, not doubled, the redials within
        // --connect-timeout 1 are the one made at once and at most two more (at 0.4 and 0.8 s); the default, 50 ms
        // doubling up to 1 s, makes five (at 0, 0.05, 0.15, 0.35 and 0.75 s). Waits only ever come late, so fewer
        // redials on a slow machine, never more.
        int dials = 0;
        await using var server = new FakeServer(
            connection => Interlocked.Increment(ref dials) == 1 ? FakeServer.Banner : FakeServer.AndClose,
            line => null);

        RunOutput run = await LoadGenerator.RunJsonAsync(
            server.Port, "-d", "20", "-c", "1", "--connect-timeout", "1", "--redial-backoff", "0.4", "--redial-backoff-max", "0.4");

        Assert.Equal(1, run.ExitCode);
        Assert.True(run.Json.GetProperty("ended_early").GetBoolean(), run.Output);
        Assert.Equal(1, run.Errors("connect")); // Closed before the banner, or a last dial still under way at the timeout.
        Assert.InRange(Volatile.Read(ref dials) - 1, 1, 3);
    }

    [Theory]
    [InlineData(TransportKind.Epoll)]
    [InlineData(TransportKind.Sockets)]
    public async Task A_real_server_that_stops_mid_run_loses_nothing_and_the_refused_redials_end_the_run(TransportKind transport)
    {
        // The server drains: it answers every request it has read, then ERROR SHUTTING_DOWN on each connection. The
        // requests behind that notice are to be sent again, but nothing listens any more: each connection counts one
        // connect error after --connect-timeout, and not one request is lost.
        TestServer server = await TestServer.StartAsync(new ServerOptions { Transport = transport });

        RunOutput run = await server.StopDuringAsync(() => LoadGenerator.RunJsonAsync(server.Port, "-d", "20", "-c", "4", "-P", "4", "--connect-timeout", "1"), connections: 4);

        Assert.Equal(1, run.ExitCode);
        Assert.True(run.Number("requests") > 0, run.Output);
        Assert.Equal(0, run.Number("lost"));
        Assert.Equal(4, run.Errors("connect"));
        Assert.Equal(4, run.Json.GetProperty("connect_errors").GetProperty("connection refused").GetInt64());
        Assert.Equal(4, run.Number("errors"));
        Assert.True(run.Json.GetProperty("ended_early").GetBoolean(), run.Output);
    }

    [Fact]
    public async Task The_text_report_has_a_reconnects_line_and_lost_among_the_errors()
    {
        int answered = 0;
        await using var server = FakeServer.WithBanner((connection, line) =>
            connection > 0 ? Echo : Interlocked.Increment(ref answered) <= 3 ? Echo : ShuttingDown + FakeServer.AndClose);

        RunOutput run = await LoadGenerator.RunTextAsync(server.Port, "-n", "10", "-c", "1");

        Assert.Equal(0, run.ExitCode);
        Assert.Contains("reconnects    1 (resent 1, lost 0)\n", run.Output, StringComparison.Ordinal);
        Assert.Contains("errors        0 (connect 0, lost 0, timeout 0, wrong_reply 0)\n", run.Output, StringComparison.Ordinal);
    }
}
