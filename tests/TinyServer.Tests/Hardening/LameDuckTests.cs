using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using TinyServer.Tests.Infrastructure;
using Xunit.Abstractions;

namespace TinyServer.Tests.Hardening;

/// <summary>
/// The lame-duck stop on the real server process (issue 11, test c): on SIGTERM <c>/readyz</c> turns 503 at once while
/// the server still greets and serves new connections for <c>--drain-delay</c>; then it refuses new connections, ends
/// the established ones with <c>ERROR SHUTTING_DOWN</c> and exits 0. A second SIGTERM cuts the delay short.
/// </summary>
[Trait("Tier", "process")]
public partial class LameDuckTests(ITestOutputHelper log)
{
    private const int DrainDelaySeconds = 5;

    /// <summary>The issue's bound: from the moment the signal is sent to the first 503 seen.</summary>
    private static readonly TimeSpan ReadinessFlip = TimeSpan.FromMilliseconds(100);

    [Theory]
    [InlineData("epoll")]
    [InlineData("sockets")]
    public async Task Sigterm_turns_readyz_503_at_once_serves_new_connections_for_the_delay_then_drains_and_exits_0(string transport)
    {
        await using ServerProcess server = await ServerProcess.StartAsync(
            ["--port", "0", "--bind", "127.0.0.1", "--transport", transport, "--drain-delay", $"{DrainDelaySeconds}", "--health-port", "0", "--shutdown-timeout", "5"]);
        Uri health = await HealthUriAsync(server);
        using HttpClient http = NewClient(health);
        await WaitForStatusAsync(http, "/readyz", HttpStatusCode.OK);
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(http, "/healthz"));
        await using RawConnection established = await RawConnection.OpenAsync(server.EndPoint);
        await established.SendAsync("ECHO before\n");
        Assert.Equal("ECHO before", await established.ReadLineAsync());

        // Measured from the moment the signal is sent, polling on the kept-alive HTTP connection.
        var sinceSignal = Stopwatch.StartNew();
        server.Terminate();
        TimeSpan flipped = await WaitForStatusAsync(http, "/readyz", HttpStatusCode.ServiceUnavailable, sinceSignal);
        log.WriteLine($"{transport}: /readyz 503 {flipped.TotalMilliseconds:F1} ms after SIGTERM was sent");
        Assert.True(flipped < ReadinessFlip, $"/readyz answered 503 only {flipped.TotalMilliseconds:F1} ms after SIGTERM (bound {ReadinessFlip.TotalMilliseconds} ms)");

        // The lame duck: not ready, but a new connection is greeted and served, and so is an established one.
        await using RawConnection fresh = await RawConnection.OpenAsync(server.EndPoint);
        await fresh.SendAsync("ECHO during the delay\n");
        Assert.Equal("ECHO during the delay", await fresh.ReadLineAsync());
        await established.SendAsync("ECHO still served\n");
        Assert.Equal("ECHO still served", await established.ReadLineAsync());
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(http, "/healthz"));
        TimeSpan servedBy = sinceSignal.Elapsed;
        Assert.True(servedBy < TimeSpan.FromSeconds(DrainDelaySeconds), $"the checks during the delay took until {servedBy} after SIGTERM: the machine stalled longer than the delay");

        // After the delay: new connections are refused, never before it.
        TimeSpan refused = await WaitForRefusalAsync(server.EndPoint, sinceSignal);
        log.WriteLine($"{transport}: listener closed {refused.TotalMilliseconds:F0} ms after SIGTERM (delay {DrainDelaySeconds} s)");
        Assert.True(refused >= TimeSpan.FromSeconds(DrainDelaySeconds), $"refused {refused} after SIGTERM, before the {DrainDelaySeconds} s delay");

        // The established connections end at their request boundary with ERROR SHUTTING_DOWN; the process exits 0.
        Assert.Equal(["ERROR SHUTTING_DOWN"], await established.ReadLinesToEndAsync());
        Assert.Equal(["ERROR SHUTTING_DOWN"], await fresh.ReadLinesToEndAsync());
        Assert.Equal(0, await server.WaitForExitAsync());

        // One line per phase, with the counts.
        Assert.Contains(server.Output, line => line.Contains($"Stopping: not ready from now on; still accepting for {DrainDelaySeconds} s (--drain-delay), 1 connections open", StringComparison.Ordinal));
        Assert.Contains(server.Output, line => DelayOver().IsMatch(line) && line.Contains("1 connections accepted during it: no longer accepting; 2 connections end", StringComparison.Ordinal));
        Assert.EndsWith("Stopped after 2 connections (0 more turned away at the limit): 2 connections drained, 0 aborted", server.Output[^1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_second_sigterm_cuts_the_delay_short()
    {
        await using ServerProcess server = await ServerProcess.StartAsync(["--port", "0", "--bind", "127.0.0.1", "--drain-delay", "600", "--health-port", "0"]);
        Uri health = await HealthUriAsync(server);
        using HttpClient http = NewClient(health);
        await WaitForStatusAsync(http, "/readyz", HttpStatusCode.OK);
        await using RawConnection established = await RawConnection.OpenAsync(server.EndPoint);

        server.Terminate();
        // Signals do not queue: the second is sent only once the first has been acted on.
        await WaitForStatusAsync(http, "/readyz", HttpStatusCode.ServiceUnavailable);
        await established.SendAsync("ECHO lame duck\n");
        Assert.Equal("ECHO lame duck", await established.ReadLineAsync());

        var sinceSecond = Stopwatch.StartNew();
        server.Terminate();
        Assert.Equal(["ERROR SHUTTING_DOWN"], await established.ReadLinesToEndAsync());
        Assert.Equal(0, await server.WaitForExitAsync()); // Bounded by Timeouts.Process, far below the 600 s delay.
        Assert.True(sinceSecond.Elapsed < Timeouts.Process, $"{sinceSecond.Elapsed}");
        Assert.Contains(server.Output, line => line.Contains("Drain delay cut short by a second signal after ", StringComparison.Ordinal));
        Assert.EndsWith("Stopped after 1 connections (0 more turned away at the limit): 1 connections drained, 0 aborted", server.Output[^1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_shutdown_timeout_counts_from_the_end_of_the_delay()
    {
        // A peer that never reads holds the drain until the shutdown timeout: 2 s of delay, then 1 s of drain.
        await using ServerProcess server = await ServerProcess.StartAsync(["--port", "0", "--bind", "127.0.0.1", "--drain-delay", "2", "--shutdown-timeout", "1"]);
        await using RawConnection stuck = await RawConnection.OpenAsync(server.EndPoint);
        byte[] flood = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("HELP\n", 20_000)));
        using var sending = new CancellationTokenSource(TimeSpan.FromSeconds(6));
        Task send = Task.Run(async () =>
        {
            while (!sending.IsCancellationRequested)
            {
                await stuck.SendAsync(flood).WaitAsync(sending.Token);
            }
        });
        await Task.Delay(1000);

        var stopping = Stopwatch.StartNew();
        server.Terminate();
        Assert.Equal(0, await server.WaitForExitAsync());
        Assert.True(stopping.Elapsed >= TimeSpan.FromSeconds(2.9), $"exited {stopping.Elapsed} after SIGTERM: the drain did not get its own second after the 2 s delay");
        Assert.Contains(server.Output, line => DelayOver().IsMatch(line));
        Assert.EndsWith("Stopped after 1 connections (0 more turned away at the limit): 0 connections drained, 1 aborted", server.Output[^1], StringComparison.Ordinal);
        await send.ContinueWith(_ => { }, TaskScheduler.Default);
    }

    /// <summary>The first health endpoint the server logged: <c>Health endpoints on http://127.0.0.1:N/healthz and /readyz</c>.</summary>
    internal static async Task<Uri> HealthUriAsync(ServerProcess server)
    {
        string line = await server.WaitForLineAsync("Health endpoints on http://127.0.0.1:");
        return new Uri(HealthLine().Match(line).Groups[1].Value);
    }

    internal static HttpClient NewClient(Uri health) =>
        new(new SocketsHttpHandler { PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5), UseProxy = false }) { BaseAddress = health, Timeout = Timeouts.Read };

    internal static async Task<HttpStatusCode> StatusAsync(HttpClient http, string path)
    {
        using HttpResponseMessage response = await http.GetAsync(path).WaitAsync(Timeouts.Read);
        return response.StatusCode;
    }

    /// <summary>Polls <paramref name="path"/> every few milliseconds until it answers <paramref name="status"/>; returns <paramref name="clock"/>'s time then.</summary>
    internal static async Task<TimeSpan> WaitForStatusAsync(HttpClient http, string path, HttpStatusCode status, Stopwatch? clock = null)
    {
        clock ??= Stopwatch.StartNew();
        TimeSpan deadline = clock.Elapsed + Timeouts.Read;
        HttpStatusCode last = 0;
        while (clock.Elapsed < deadline)
        {
            last = await StatusAsync(http, path);
            if (last == status)
            {
                return clock.Elapsed;
            }

            await Task.Delay(2);
        }

        Assert.Fail($"{path} answered {last}, not {status}, for {Timeouts.Read}");
        return default;
    }

    /// <summary>
    /// Watches the kernel's socket table every 10 ms (no connection is made, so none is counted) until nothing
    /// listens on <paramref name="endPoint"/>, then checks that a connection is refused; returns <paramref name="clock"/>'s
    /// time when the listener was seen gone.
    /// </summary>
    private static async Task<TimeSpan> WaitForRefusalAsync(IPEndPoint endPoint, Stopwatch clock)
    {
        string local = $"0100007F:{endPoint.Port:X4}";
        TimeSpan deadline = clock.Elapsed + TimeSpan.FromSeconds(DrainDelaySeconds) + Timeouts.Read;
        while (File.ReadLines("/proc/net/tcp").Skip(1).Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Any(fields => fields[1] == local && fields[3] == "0A"))
        {
            Assert.True(clock.Elapsed < deadline, $"{endPoint} still listening {clock.Elapsed} after SIGTERM");
            await Task.Delay(10);
        }

        TimeSpan gone = clock.Elapsed;
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        SocketException refused = await Assert.ThrowsAsync<SocketException>(() => socket.ConnectAsync(endPoint).WaitAsync(Timeouts.Read));
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
        return gone;
    }

    [GeneratedRegex(@"Drain delay over after \d+ ms")]
    private static partial Regex DelayOver();

    [GeneratedRegex(@"Health endpoints on (http://127\.0\.0\.1:\d+)/healthz")]
    private static partial Regex HealthLine();
}
