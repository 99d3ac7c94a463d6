using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;
using Microsoft.Extensions.Time.Testing;
using TinyServer.ClientLibrary;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Server;

/// <summary>
/// The client library's reconnecting session (issue 11, item 4): a close between requests and a closing notice lead
/// to a new connection, requests answered with ERROR SHUTTING_DOWN are sent again, requests in flight at a close are
/// reported lost and never sent again, and a server gone for good fails the request after the connect timeout.
/// </summary>
[Trait("Tier", "unit")]
public sealed class ReconnectingClientTests
{
    private const string Banner = "WELCOME, I'm TinyServer not pressure\n";

    [Fact]
    public async Task After_bye_the_next_request_goes_on_a_new_connection()
    {
        await using TestServer server = await TestServer.StartAsync();
        using var deadline = new CancellationTokenSource(Timeouts.Read);
        await using ReconnectingTinyServerClient client = await ReconnectingTinyServerClient.ConnectAsync("127.0.0.1", server.Port, cancellationToken: deadline.Token);

        Assert.Equal("ECHO one", await client.RequestAsync("ECHO one", deadline.Token));
        Assert.Equal("BYE", await client.RequestAsync("QUIT", deadline.Token));
        Assert.Equal("ECHO two", await client.RequestAsync("ECHO two", deadline.Token));

        Assert.Equal(1, client.Reconnects);
        Assert.Equal(0, client.Resent);
    }

    [Fact]
    public async Task A_request_answered_with_shutting_down_is_sent_again_on_a_new_connection()
    {
        await using var server = new ScriptedServers(async (connection, lines) =>
        {
            await lines.SendAsync(Banner);
            if (connection == 0)
            {
                await lines.AnswerAsync(1);
                await lines.ReadLineAsync();
                await lines.SendAsync("ERROR SHUTTING_DOWN\n");
                await lines.LingerAsync();
            }
            else
            {
                await lines.AnswerAsync(int.MaxValue);
            }
        });
        using var deadline = new CancellationTokenSource(Timeouts.Read);
        await using ReconnectingTinyServerClient client = await ReconnectingTinyServerClient.ConnectAsync("127.0.0.1", server.Port, cancellationToken: deadline.Token);

        Assert.Equal("ECHO 1", await client.RequestAsync("ECHO 1", deadline.Token));
        Assert.Equal("ECHO 2", await client.RequestAsync("ECHO 2", deadline.Token));

        Assert.Equal(1, client.Reconnects);
        Assert.Equal(1, client.Resent);
        Assert.Equal(["ECHO 1", "ECHO 2"], server.Received(0));
        Assert.Equal(["ECHO 2"], server.Received(1));
    }

    [Fact]
    public async Task The_unexecuted_rest_of_a_pipeline_is_sent_again_and_every_reply_comes_back_in_order()
    {
        // The first connection answers two of five pipelined requests, then ERROR SHUTTING_DOWN, and closes.
        await using var server = new ScriptedServers(async (connection, lines) =>
        {
            await lines.SendAsync(Banner);
            if (connection == 0)
            {
                await lines.AnswerAsync(2);
                await lines.SendAsync("ERROR SHUTTING_DOWN\n");
                await lines.LingerAsync();
            }
            else
            {
                await lines.AnswerAsync(int.MaxValue);
            }
        });
        using var deadline = new CancellationTokenSource(Timeouts.Read);
        await using ReconnectingTinyServerClient client = await ReconnectingTinyServerClient.ConnectAsync("127.0.0.1", server.Port, cancellationToken: deadline.Token);
        string[] commands = ["ECHO a", "ECHO b", "ECHO c", "ECHO d", "ECHO e"];

        Assert.Equal(commands, await client.PipelineAsync(commands, deadline.Token));

        Assert.Equal(1, client.Reconnects);
        Assert.Equal(3, client.Resent);
        Assert.Equal(["ECHO c", "ECHO d", "ECHO e"], server.Received(1));
    }

    [Fact]
    public async Task A_notice_sent_unasked_while_idle_moves_the_next_request_to_a_new_connection()
    {
        var noticeSent = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = new ScriptedServers(async (connection, lines) =>
        {
            await lines.SendAsync(Banner);
            if (connection == 0)
            {
                await lines.AnswerAsync(1);
                await lines.SendAsync("ERROR IDLE_TIMEOUT\n");
                noticeSent.SetResult();
                await lines.LingerAsync();
            }
            else
            {
                await lines.AnswerAsync(int.MaxValue);
            }
        });
        using var deadline = new CancellationTokenSource(Timeouts.Read);
        await using ReconnectingTinyServerClient client = await ReconnectingTinyServerClient.ConnectAsync("127.0.0.1", server.Port, cancellationToken: deadline.Token);
        Assert.Equal("ECHO 1", await client.RequestAsync("ECHO 1", deadline.Token));
        await noticeSent.Task.WaitAsync(Timeouts.Read);
        await WaitUntilAsync(() => !client.IsConnected, deadline.Token); // The notice came before the next request.

        Assert.Equal("ECHO 2", await client.RequestAsync("ECHO 2", deadline.Token));

        Assert.Equal(1, client.Reconnects);
        Assert.Equal(0, client.Resent);
        Assert.Equal(["ECHO 1"], server.Received(0));
        Assert.Equal(["ECHO 2"], server.Received(1));
    }

    [Fact]
    public async Task Requests_in_flight_at_a_close_are_lost_and_never_sent_again()
    {
        // The first connection answers one request of a pipeline of three, and closes without a notice.
        await using var server = new ScriptedServers(async (connection, lines) =>
        {
            await lines.SendAsync(Banner);
            if (connection == 0)
            {
                await lines.AnswerAsync(1);
                await lines.LingerAsync();
            }
            else
            {
                await lines.AnswerAsync(int.MaxValue);
            }
        });
        using var deadline = new CancellationTokenSource(Timeouts.Read);
        await using ReconnectingTinyServerClient client = await ReconnectingTinyServerClient.ConnectAsync("127.0.0.1", server.Port, cancellationToken: deadline.Token);

        RequestLostException lost = await Assert.ThrowsAsync<RequestLostException>(() => client.PipelineAsync(["ECHO 1", "ECHO 2", "ECHO 3"], deadline.Token));

        Assert.Equal(["ECHO 1"], lost.Answered);
        Assert.Equal(["ECHO 2", "ECHO 3"], lost.Unanswered);
        Assert.Equal("ECHO 4", await client.RequestAsync("ECHO 4", deadline.Token)); // The next request connects again.
        Assert.Equal(["ECHO 4"], server.Received(1)); // Nothing lost was sent again.
        Assert.Equal(1, client.Reconnects);
        Assert.Equal(0, client.Resent);
    }

    [Fact]
    public async Task A_server_gone_for_good_fails_the_request_after_the_connect_timeout()
    {
        ScriptedServers? server = null;
        server = new ScriptedServers(async (connection, lines) =>
        {
            await lines.SendAsync(Banner);
            await lines.AnswerAsync(1);
            server!.StopListening();
            await lines.ReadLineAsync();
            await lines.SendAsync("ERROR SHUTTING_DOWN\n");
            await lines.LingerAsync();
        });
        await using (server)
        {
            // On a fake clock (advanced by each wait the client begins): a dial on the real one may be abandoned at the
            // deadline on a slow machine, and then a TimeoutException is right.
            var time = new WaitRecordingTime();
            using var deadline = new CancellationTokenSource(Timeouts.Read);
            var options = new ReconnectOptions { ConnectTimeout = TimeSpan.FromSeconds(0.5), TimeProvider = time };
            await using ReconnectingTinyServerClient client = await ReconnectingTinyServerClient.ConnectAsync("127.0.0.1", server.Port, options: options, cancellationToken: deadline.Token);
            Assert.Equal("ECHO 1", await client.RequestAsync("ECHO 1", deadline.Token));

            Task<string> request = client.RequestAsync("ECHO 2", deadline.Token);
            List<TimeSpan> waits = await AdvanceThroughWaitsAsync(request, time, deadline.Token);

            SocketException refused = await Assert.ThrowsAsync<SocketException>(() => request.WaitAsync(Timeouts.Read));
            Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
            Assert.Equal([50, 100, 200], waits.Select(wait => (int)wait.TotalMilliseconds)); // The defaults; 0.35 s + 0.4 s is past 0.5 s.
            Assert.False(deadline.IsCancellationRequested, "the connect timeout, not the test's deadline, ended it");
            Assert.Equal(0, client.Reconnects);
        }
    }

    [Theory]
    [InlineData(1_100 * Millisecond, new[] { 0, 100, 300, 700 })] // The dial at 1.1 s would be at the timeout: not made.
    [InlineData(1_500 * Millisecond - 1, new[] { 0, 100, 300, 700, 1_100 })]
    [InlineData(1_500 * Millisecond, new[] { 0, 100, 300, 700, 1_100 })]
    [InlineData(1_500 * Millisecond + 1, new[] { 0, 100, 300, 700, 1_100, 1_500 })]
    public async Task Failed_redials_wait_the_first_backoff_doubling_up_to_the_max_until_the_connect_timeout_then_throw_server_closed(long connectTimeoutTicks, int[] dialsAtMilliseconds)
    {
        // The first connection answers one request and closes; every later one closes before its banner (as a full
        // server does). The waits run on a fake clock that only the test advances, and only once the client waits on
        // it, so the dials (real ones, to the server here) happen at exact instants: 0.1 s doubling up to 0.4 s apart,
        // none at or after the connect timeout, however slow the machine.
        var time = new WaitRecordingTime();
        await using var server = new ScriptedServers(async (connection, lines) =>
        {
            if (connection == 0)
            {
                await lines.SendAsync(Banner);
                await lines.AnswerAsync(1);
            }

            await lines.LingerAsync();
        });
        var dialledAt = new ConcurrentQueue<DateTimeOffset>();
        using var deadline = new CancellationTokenSource(Timeouts.Read);
        var options = new ReconnectOptions
        {
            ConnectTimeout = TimeSpan.FromTicks(connectTimeoutTicks),
            FirstBackoff = TimeSpan.FromMilliseconds(100),
            MaxBackoff = TimeSpan.FromMilliseconds(400),
            TimeProvider = time,
        };
        await using ReconnectingTinyServerClient client = await ReconnectingTinyServerClient.ConnectAsync(
            token => CountedDial(dialledAt, time, server.Port, token), options, deadline.Token);
        Assert.Equal("ECHO 1", await client.RequestAsync("ECHO 1", deadline.Token));
        await WaitUntilAsync(() => !client.IsConnected, deadline.Token); // The close is seen while idle: nothing in flight.
        DateTimeOffset ended = time.GetUtcNow();

        Task<string> request = client.RequestAsync("ECHO 2", deadline.Token);
        List<TimeSpan> waits = await AdvanceThroughWaitsAsync(request, time, deadline.Token);

        ServerClosedException error = await Assert.ThrowsAsync<ServerClosedException>(() => request.WaitAsync(Timeouts.Read));
        Assert.NotEmpty(error.Message); // Why the last dial failed: the server closed it before its banner.
        Assert.Equal(dialsAtMilliseconds, dialledAt.Skip(1).Select(at => (int)(at - ended).TotalMilliseconds).ToArray());
        Assert.Equal(dialsAtMilliseconds.Zip(dialsAtMilliseconds.Skip(1), (a, b) => TimeSpan.FromMilliseconds(b - a)), waits.ToArray());
        Assert.Equal(1 + dialsAtMilliseconds.Length, server.Accepted); // Every dial reached the server.
        Assert.Equal(0, client.Reconnects);
        Assert.False(deadline.IsCancellationRequested);
    }

    [Fact]
    public async Task A_connect_timeout_of_zero_replaces_no_connection_and_the_next_request_throws_a_timeout_exception()
    {
        // The first connection answers one request and closes. With no time to replace it, nothing is dialled.
        await using var server = new ScriptedServers(async (connection, lines) =>
        {
            await lines.SendAsync(Banner);
            await lines.AnswerAsync(1);
            await lines.LingerAsync();
        });
        int dials = 0;
        using var deadline = new CancellationTokenSource(Timeouts.Read);
        await using ReconnectingTinyServerClient client = await ReconnectingTinyServerClient.ConnectAsync(
            token =>
            {
                dials++;
                return TinyServerClient.ConnectAsync("127.0.0.1", server.Port, token);
            },
            new ReconnectOptions { ConnectTimeout = TimeSpan.Zero, TimeProvider = new FakeTimeProvider() },
            deadline.Token);
        Assert.Equal("ECHO 1", await client.RequestAsync("ECHO 1", deadline.Token));
        await WaitUntilAsync(() => !client.IsConnected, deadline.Token);

        TimeoutException error = await Assert.ThrowsAsync<TimeoutException>(() => client.RequestAsync("ECHO 2", deadline.Token));

        Assert.Contains("not replaced", error.Message, StringComparison.Ordinal);
        Assert.Equal(1, dials);
        Assert.Equal(1, server.Accepted);
        Assert.Equal(["ECHO 1"], server.Received(0));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)] // The dial that hangs is the second, 0.1 s after the first failed: the deadline still counts from the end.
    public async Task A_redial_that_connects_but_gets_no_banner_is_abandoned_at_the_connect_timeout_with_a_timeout_exception(bool failedFirst)
    {
        // The first connection answers one request and closes. Then (after one dial closed before its banner, when
        // failedFirst) the server accepts a dial and never greets it: that dial must end at the connect timeout, counted
        // from the close, on the fake clock (its token cancelled, its socket closed), not at the caller's cancellation.
        var time = new WaitRecordingTime();
        var abandoned = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int silent = failedFirst ? 2 : 1;
        await using var server = new ScriptedServers(async (connection, lines) =>
        {
            if (connection == 0 || connection > silent)
            {
                await lines.SendAsync(Banner);
                await lines.AnswerAsync(connection == 0 ? 1 : int.MaxValue);
            }
            else if (connection == silent)
            {
                if (await lines.ReadLineAsync() is null)
                {
                    abandoned.TrySetResult(); // The client closed the dial, having sent nothing.
                }
            }

            await lines.LingerAsync();
        });
        var dials = new ConcurrentQueue<CancellationToken>();
        using var deadline = new CancellationTokenSource(Timeouts.Read);
        var options = new ReconnectOptions { ConnectTimeout = TimeSpan.FromSeconds(1), FirstBackoff = TimeSpan.FromMilliseconds(100), TimeProvider = time };
        await using ReconnectingTinyServerClient client = await ReconnectingTinyServerClient.ConnectAsync(
            token =>
            {
                dials.Enqueue(token);
                return TinyServerClient.ConnectAsync("127.0.0.1", server.Port, token);
            },
            options,
            deadline.Token);
        Assert.Equal("ECHO 1", await client.RequestAsync("ECHO 1", deadline.Token));
        await WaitUntilAsync(() => !client.IsConnected, deadline.Token);
        DateTimeOffset ended = time.GetUtcNow();

        Task<string> request = client.RequestAsync("ECHO 2", deadline.Token);
        if (failedFirst)
        {
            TimeSpan wait = await time.NextWaitAsync(deadline.Token).WaitAsync(Timeouts.Read);
            Assert.Equal(TimeSpan.FromMilliseconds(100), wait);
            time.Advance(wait);
        }

        await WaitUntilAsync(() => server.Accepted == silent + 1, deadline.Token); // The silent dial is connected.
        CancellationToken dial = dials.Last();
        time.Advance(ended + options.ConnectTimeout - time.GetUtcNow() - TimeSpan.FromTicks(1));
        Assert.False(dial.IsCancellationRequested, "the dial was abandoned before the connect timeout");
        time.Advance(TimeSpan.FromTicks(1));
        Assert.True(dial.IsCancellationRequested, $"the dial was not abandoned at the connect timeout (request {request.Status})");

        TimeoutException error = await Assert.ThrowsAsync<TimeoutException>(() => request.WaitAsync(Timeouts.Read));
        Assert.Contains("abandoned", error.Message, StringComparison.Ordinal);
        await abandoned.Task.WaitAsync(Timeouts.Read);
        Assert.Equal(silent + 1, dials.Count); // The first connect, then each redial once.
        Assert.Equal(0, client.Reconnects);
        Assert.False(deadline.IsCancellationRequested);
        Assert.Equal("ECHO 3", await client.RequestAsync("ECHO 3", deadline.Token)); // The next request dials again.
    }

    [Theory]
    [InlineData(0L, new int[0])] // No time to replace the connection: the notice's request fails at once.
    [InlineData(1_100 * Millisecond, new[] { 0, 100, 300, 700 })] // The redial at 1.1 s would be at the timeout: not made.
    [InlineData(1_100 * Millisecond + 1, new[] { 0, 100, 300, 700, 1_100 })]
    public async Task Reconnects_ended_by_a_closing_notice_before_any_answer_wait_the_same_backoff_as_failed_dials(long connectTimeoutTicks, int[] dialsAtMilliseconds)
    {
        // Every connection reads the request and answers ERROR SHUTTING_DOWN: the first redial is made at once, each
        // further one after FirstBackoff (0.1 s) doubling up to MaxBackoff (0.4 s), none at or after the connect
        // timeout (counted from the first notice); then the notice's ServerClosedException. Not a tight loop.
        var time = new WaitRecordingTime();
        await using var server = new ScriptedServers(async (connection, lines) =>
        {
            await lines.SendAsync(Banner);
            await lines.ReadLineAsync();
            await lines.SendAsync("ERROR SHUTTING_DOWN\n");
            await lines.LingerAsync();
        });
        var dialledAt = new ConcurrentQueue<DateTimeOffset>();
        using var deadline = new CancellationTokenSource(Timeouts.Read);
        var options = new ReconnectOptions
        {
            ConnectTimeout = TimeSpan.FromTicks(connectTimeoutTicks),
            FirstBackoff = TimeSpan.FromMilliseconds(100),
            MaxBackoff = TimeSpan.FromMilliseconds(400),
            TimeProvider = time,
        };
        await using ReconnectingTinyServerClient client = await ReconnectingTinyServerClient.ConnectAsync(
            token => CountedDial(dialledAt, time, server.Port, token), options, deadline.Token);
        DateTimeOffset noticed = time.GetUtcNow(); // The fake clock stands still until the client waits.

        Task<string> request = client.RequestAsync("ECHO 1", deadline.Token);
        List<TimeSpan> waits = await AdvanceThroughWaitsAsync(request, time, deadline.Token);

        ServerClosedException error = await Assert.ThrowsAsync<ServerClosedException>(() => request.WaitAsync(Timeouts.Read));
        Assert.Contains("ERROR SHUTTING_DOWN' on every connection", error.Message, StringComparison.Ordinal);
        Assert.Equal(dialsAtMilliseconds, dialledAt.Skip(1).Select(at => (int)(at - noticed).TotalMilliseconds).ToArray());
        Assert.Equal(dialsAtMilliseconds.Zip(dialsAtMilliseconds.Skip(1), (a, b) => TimeSpan.FromMilliseconds(b - a)), waits.ToArray());
        Assert.Equal(dialsAtMilliseconds.Length, client.Reconnects);
        Assert.Equal(dialsAtMilliseconds.Length, client.Resent);
        Assert.False(deadline.IsCancellationRequested);
    }

    [Fact]
    public async Task The_reconnect_backoff_starts_again_from_the_first_once_a_request_is_answered()
    {
        // A pipeline of three. Connection 0 answers a, then ERROR SHUTTING_DOWN; 1 and 2 answer nothing (the notice);
        // 3 answers b, then the notice; 4 answers nothing; 5 answers c. The redials: 1 at once (the first since an
        // answer), 2 after 0.1 s, 3 after 0.2 s more, 4 at once (b was answered), 5 after 0.1 s (not 0.4 s).
        var time = new WaitRecordingTime();
        await using var server = new ScriptedServers(async (connection, lines) =>
        {
            await lines.SendAsync(Banner);
            if (connection == 5)
            {
                await lines.AnswerAsync(int.MaxValue);
                return;
            }

            await lines.AnswerAsync(connection is 0 or 3 ? 1 : 0);
            await lines.ReadLineAsync();
            await lines.SendAsync("ERROR SHUTTING_DOWN\n");
            await lines.LingerAsync();
        });
        var dialledAt = new ConcurrentQueue<DateTimeOffset>();
        using var deadline = new CancellationTokenSource(Timeouts.Read);
        var options = new ReconnectOptions { FirstBackoff = TimeSpan.FromMilliseconds(100), MaxBackoff = TimeSpan.FromMilliseconds(400), TimeProvider = time };
        await using ReconnectingTinyServerClient client = await ReconnectingTinyServerClient.ConnectAsync(
            token => CountedDial(dialledAt, time, server.Port, token), options, deadline.Token);
        DateTimeOffset start = time.GetUtcNow();

        Task<IReadOnlyList<string>> pipeline = client.PipelineAsync(["ECHO a", "ECHO b", "ECHO c"], deadline.Token);
        List<TimeSpan> waits = await AdvanceThroughWaitsAsync(pipeline, time, deadline.Token);

        Assert.Equal(["ECHO a", "ECHO b", "ECHO c"], await pipeline.WaitAsync(Timeouts.Read));
        Assert.Equal([0, 100, 300, 300, 400], dialledAt.Skip(1).Select(at => (int)(at - start).TotalMilliseconds).ToArray());
        Assert.Equal([TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(200), TimeSpan.FromMilliseconds(100)], waits.ToArray());
        Assert.Equal(5, client.Reconnects);
        Assert.Equal(2 + 2 + 2 + 1 + 1, client.Resent);
        Assert.Equal(["ECHO c"], server.Received(5));
    }

    // A dial to the port, its fake instant recorded; past 20 dials it throws (a tight redial loop fails the test fast).
    private static Task<TinyServerClient> CountedDial(ConcurrentQueue<DateTimeOffset> dialledAt, TimeProvider time, int port, CancellationToken token)
    {
        dialledAt.Enqueue(time.GetUtcNow());
        return dialledAt.Count <= 20
            ? TinyServerClient.ConnectAsync("127.0.0.1", port, token)
            : throw new InvalidOperationException($"{dialledAt.Count} dials, the last at {time.GetUtcNow():HH:mm:ss.fff} on the fake clock");
    }

    // Advances the fake clock by each wait the client begins, until the request ends; returns the waits.
    private static async Task<List<TimeSpan>> AdvanceThroughWaitsAsync(Task request, WaitRecordingTime time, CancellationToken cancellationToken)
    {
        var waits = new List<TimeSpan>();
        while (!request.IsCompleted && waits.Count < 50)
        {
            Task<TimeSpan> wait = time.NextWaitAsync(cancellationToken);
            if (await Task.WhenAny(request, wait).WaitAsync(Timeouts.Read) == wait)
            {
                waits.Add(await wait);
                time.Advance(await wait);
            }
        }

        return waits;
    }

    [Theory]
    [InlineData(nameof(ReconnectOptions.ConnectTimeout), -1L, false)]
    [InlineData(nameof(ReconnectOptions.ConnectTimeout), 0L, true)]
    [InlineData(nameof(ReconnectOptions.ConnectTimeout), 1L, true)]
    [InlineData(nameof(ReconnectOptions.ConnectTimeout), Hour - 1, true)]
    [InlineData(nameof(ReconnectOptions.ConnectTimeout), Hour, true)]
    [InlineData(nameof(ReconnectOptions.ConnectTimeout), Hour + 1, false)]
    [InlineData(nameof(ReconnectOptions.FirstBackoff), Millisecond - 1, false)]
    [InlineData(nameof(ReconnectOptions.FirstBackoff), Millisecond, true)]
    [InlineData(nameof(ReconnectOptions.FirstBackoff), Millisecond + 1, true)]
    [InlineData(nameof(ReconnectOptions.FirstBackoff), Minute - 1, true)]
    [InlineData(nameof(ReconnectOptions.FirstBackoff), Minute, true)]
    [InlineData(nameof(ReconnectOptions.FirstBackoff), Minute + 1, false)]
    [InlineData(nameof(ReconnectOptions.MaxBackoff), Millisecond - 1, false)]
    [InlineData(nameof(ReconnectOptions.MaxBackoff), Millisecond, true)]
    [InlineData(nameof(ReconnectOptions.MaxBackoff), Millisecond + 1, true)]
    [InlineData(nameof(ReconnectOptions.MaxBackoff), Minute - 1, true)]
    [InlineData(nameof(ReconnectOptions.MaxBackoff), Minute, true)]
    [InlineData(nameof(ReconnectOptions.MaxBackoff), Minute + 1, false)]
    public async Task The_reconnect_options_are_taken_at_their_limits_and_refused_past_them_before_anything_is_dialled(string property, long ticks, bool valid)
    {
        // The backoff not under test spans the whole range, so that only this value can be out of it.
        var value = TimeSpan.FromTicks(ticks);
        ReconnectOptions options = property switch
        {
            nameof(ReconnectOptions.ConnectTimeout) => new() { ConnectTimeout = value },
            nameof(ReconnectOptions.FirstBackoff) => new() { FirstBackoff = value, MaxBackoff = ReconnectOptions.LongestBackoff },
            _ => new() { FirstBackoff = ReconnectOptions.ShortestBackoff, MaxBackoff = value },
        };

        Exception error = await ConnectWithAsync(options);

        if (valid)
        {
            Assert.IsType<Dialled>(error);
        }
        else
        {
            Assert.Equal(property, Assert.IsType<ArgumentOutOfRangeException>(error).ParamName);
        }
    }

    [Theory]
    [InlineData(-1L, false)]
    [InlineData(0L, true)]
    [InlineData(1L, true)]
    public async Task The_max_backoff_is_not_less_than_the_first(long ticksMore, bool valid)
    {
        var first = TimeSpan.FromMilliseconds(200);
        var options = new ReconnectOptions { FirstBackoff = first, MaxBackoff = first + TimeSpan.FromTicks(ticksMore) };

        Exception error = await ConnectWithAsync(options);

        Assert.True(valid ? error is Dialled : error is ArgumentOutOfRangeException { ParamName: nameof(ReconnectOptions.MaxBackoff) }, error.ToString());
    }

    [Fact]
    public void The_defaults_are_30_s_to_reconnect_and_waits_of_50_ms_doubling_up_to_1_s_on_the_system_clock()
    {
        var options = new ReconnectOptions();

        Assert.Equal(TimeSpan.FromSeconds(30), options.ConnectTimeout);
        Assert.Equal(TimeSpan.FromMilliseconds(50), options.FirstBackoff);
        Assert.Equal(TimeSpan.FromSeconds(1), options.MaxBackoff);
        Assert.Same(TimeProvider.System, options.TimeProvider);
    }

    [Fact]
    public async Task A_null_clock_is_refused_before_anything_is_dialled()
    {
        Exception error = await ConnectWithAsync(new ReconnectOptions { TimeProvider = null! });

        Assert.Equal(nameof(ReconnectOptions.TimeProvider), Assert.IsType<ArgumentNullException>(error).ParamName);
    }

    private const long Millisecond = TimeSpan.TicksPerMillisecond;
    private const long Minute = TimeSpan.TicksPerMinute;
    private const long Hour = TimeSpan.TicksPerHour;

    // What ConnectAsync throws when given these options and a connect that throws Dialled: Dialled when it got as far
    // as dialling.
    private static async Task<Exception> ConnectWithAsync(ReconnectOptions options) =>
        await Assert.ThrowsAnyAsync<Exception>(() => ReconnectingTinyServerClient.ConnectAsync(_ => throw new Dialled(), options));

    private sealed class Dialled : Exception;

    /// <summary>
    /// A fake clock that hands the test every wait made on it (the reconnect's backoff), as it begins; the timers of
    /// cancellation sources (a dial's deadline) are not waits.
    /// </summary>
    private sealed class WaitRecordingTime : FakeTimeProvider
    {
        private readonly Channel<TimeSpan> _waits = Channel.CreateUnbounded<TimeSpan>();

        public Task<TimeSpan> NextWaitAsync(CancellationToken cancellationToken) => _waits.Reader.ReadAsync(cancellationToken).AsTask();

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            ITimer timer = base.CreateTimer(callback, state, dueTime, period);
            if (state is not CancellationTokenSource)
            {
                _waits.Writer.TryWrite(dueTime); // A wait (Task.Delay), not a dial's deadline (a CancellationTokenSource's timer).
            }

            return timer;
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition, CancellationToken cancellationToken)
    {
        while (!condition())
        {
            await Task.Delay(10, cancellationToken);
        }
    }

    /// <summary>
    /// A stand-in server on 127.0.0.1 and a free port that runs <c>script(connection, lines)</c> on every connection it
    /// accepts (numbered from 0) and records the lines each received.
    /// </summary>
    private sealed class ScriptedServers : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly ConcurrentDictionary<int, ConcurrentQueue<string>> _received = new();
        private readonly ConcurrentBag<Task> _sessions = [];
        private readonly Func<int, Lines, Task> _script;
        private readonly Task _accepting;
        private int _accepted;

        public ScriptedServers(Func<int, Lines, Task> script)
        {
            _script = script;
            _listener.Start();
            Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
            _accepting = AcceptAsync();
        }

        public int Port { get; }

        /// <summary>The connections accepted so far.</summary>
        public int Accepted => Volatile.Read(ref _accepted);

        public IReadOnlyList<string> Received(int connection) => [.. _received.GetOrAdd(connection, _ => new())];

        public void StopListening() => _listener.Stop();

        private async Task AcceptAsync()
        {
            try
            {
                for (int connection = 0; ; connection++)
                {
                    Socket socket = await _listener.AcceptSocketAsync();
                    Interlocked.Increment(ref _accepted); // Before the script can answer (or close) the dial.
                    _sessions.Add(RunAsync(connection, socket));
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException or InvalidOperationException)
            {
                // Stopped listening.
            }
        }

        private async Task RunAsync(int connection, Socket socket)
        {
            using (socket)
            {
                try
                {
                    await _script(connection, new Lines(socket, _received.GetOrAdd(connection, _ => new())));
                }
                catch (Exception e) when (e is SocketException or TimeoutException or OperationCanceledException)
                {
                    // The client went away.
                }
            }
        }

        public async ValueTask DisposeAsync()
        {
            _listener.Stop();
            await Task.WhenAll([_accepting, .. _sessions]).WaitAsync(Timeouts.Read);
        }
    }

    /// <summary>One scripted connection: lines in (recorded), text out.</summary>
    private sealed class Lines(Socket socket, ConcurrentQueue<string> received)
    {
        private readonly List<byte> _pending = [];
        private readonly byte[] _buffer = new byte[4096];

        public Task SendAsync(string text) => socket.SendAsync(Encoding.UTF8.GetBytes(text), SocketFlags.None).WaitAsync(Timeouts.Read);

        /// <summary>The next request line (without its line ending), or null at the end of the stream.</summary>
        public async Task<string?> ReadLineAsync()
        {
            while (true)
            {
                int lf = _pending.IndexOf((byte)'\n');
                if (lf >= 0)
                {
                    string line = Encoding.UTF8.GetString([.. _pending.Take(lf)]).TrimEnd('\r');
                    _pending.RemoveRange(0, lf + 1);
                    received.Enqueue(line);
                    return line;
                }

                int n = await socket.ReceiveAsync(_buffer, SocketFlags.None).WaitAsync(Timeouts.Read);
                if (n == 0)
                {
                    return null;
                }

                _pending.AddRange(_buffer.AsSpan(0, n));
            }
        }

        /// <summary>Answers up to <paramref name="count"/> requests, each ECHO with its text (the end of the stream stops it).</summary>
        public async Task AnswerAsync(int count)
        {
            for (int i = 0; i < count; i++)
            {
                string? line = await ReadLineAsync();
                if (line is null)
                {
                    return;
                }

                await SendAsync(line + "\n");
            }
        }

        /// <summary>Closes as the real server does: the end of its sending side, then reading until the client closes.</summary>
        public async Task LingerAsync()
        {
            socket.Shutdown(SocketShutdown.Send);
            while (await socket.ReceiveAsync(_buffer, SocketFlags.None).WaitAsync(Timeouts.Read) > 0)
            {
            }
        }
    }
}
