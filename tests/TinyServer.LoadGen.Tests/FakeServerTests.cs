using System.Net;
using System.Net.Sockets;
using TinyServer.LoadGen.Tests.Infrastructure;

namespace TinyServer.LoadGen.Tests;

/// <summary>Runs against stand-in servers that answer wrongly, close, stall, or speak RESP.</summary>
[Trait("Tier", "unit")]
public class FakeServerTests
{
    [Fact]
    public async Task Every_wrong_reply_is_counted()
    {
        await using var server = FakeServer.WithBanner(line => line == "ECHO hello" ? "ECHO hellx\n" : "ERROR UNKNOWN_COMMAND\n");

        RunOutput run = await LoadGenerator.RunJsonAsync(server.Port, "-n", "10", "-c", "1", "-P", "3");

        Assert.Equal(1, run.ExitCode);
        Assert.Equal(10, run.Errors("wrong_reply"));
        Assert.Equal(10, run.Number("errors"));
    }

    [Fact]
    public async Task A_reply_nobody_asked_for_is_wrong_and_closes_the_connection()
    {
        await using var server = FakeServer.WithBanner(line => "ECHO hello\nECHO hello\n");

        RunOutput run = await LoadGenerator.RunJsonAsync(server.Port, "-n", "4", "-c", "1");

        Assert.Equal(1, run.ExitCode);
        Assert.Equal(1, run.Errors("wrong_reply"));
    }

    [Fact]
    public async Task A_server_that_closes_every_connection_mid_run_loses_a_request_on_each()
    {
        // After three answers, each request read closes its connection: it is lost, and a new connection sends the next.
        int answered = 0;
        await using var server = FakeServer.WithBanner(line => Interlocked.Increment(ref answered) <= 3 ? "ECHO hello\n" : null);

        RunOutput run = await LoadGenerator.RunJsonAsync(server.Port, "-n", "10", "-c", "1");

        Assert.Equal(1, run.ExitCode);
        Assert.Equal(7, run.Errors("lost"));
        Assert.Equal(6, run.Number("reconnects")); // After the seventh, nothing is left to send.
        Assert.Equal(3, run.Number("requests"));
    }

    [Fact]
    public async Task A_server_that_never_answers_is_a_timeout()
    {
        await using var server = FakeServer.WithBanner(line => "");

        RunOutput run = await LoadGenerator.RunJsonAsync(server.Port, "-n", "5", "-c", "2", "--reply-timeout", "0.3");

        Assert.Equal(1, run.ExitCode);
        Assert.Equal(2, run.Errors("timeout"));
    }

    [Fact]
    public async Task A_wrong_banner_is_a_connect_error()
    {
        await using var server = new FakeServer(_ => "HELLO\n", line => "ECHO hello\n");

        RunOutput run = await LoadGenerator.RunJsonAsync(server.Port, "-n", "5", "-c", "2");

        Assert.Equal(1, run.ExitCode);
        Assert.Equal(2, run.Errors("connect"));
        Assert.Equal(0, run.Number("connected"));
    }

    [Fact]
    public async Task A_banner_that_never_comes_is_redialled()
    {
        await using var server = new FakeServer(n => n == 0 ? null : FakeServer.Banner, line => "ECHO hello\n");

        RunOutput run = await LoadGenerator.RunJsonAsync(server.Port, "-n", "5", "-c", "1", "--retry-after", "0.2");

        Assert.Equal(0, run.ExitCode);
        Assert.True(run.Number("connect_retries") >= 1); // More when a loaded machine delays the later banners too.
        Assert.Equal(5, run.Number("requests"));
    }

    [Fact]
    public async Task A_refused_connection_is_a_connect_error()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();

        RunOutput run = await LoadGenerator.RunJsonAsync(port, "-d", "1", "-c", "3");

        Assert.Equal(1, run.ExitCode);
        Assert.Equal(3, run.Errors("connect"));
        Assert.Equal(0, run.Number("requests"));
    }

    [Fact]
    public async Task Redis_mode_sends_inline_commands_and_checks_resp_replies()
    {
        await using var server = FakeServer.WithoutBanner(line => line switch
        {
            "ECHO hello" => "$5\r\nhello\r\n",
            "PING" => "+PONG\r\n",
            "TIME" => "*2\r\n$10\r\n1700000000\r\n$6\r\n123456\r\n",
            "QUIT" => "+OK\r\n",
            _ => "-ERR unknown command\r\n",
        });

        RunOutput run = await LoadGenerator.RunJsonAsync(server.Port, "--redis", "--command", "ECHO hello:2,PING:1,TIME:1", "-n", "100", "-c", "2", "-P", "4");

        Assert.Equal(0, run.ExitCode);
        Assert.Equal(100, run.Number("requests"));
        Assert.True(run.Json.GetProperty("redis").GetBoolean());
    }

    [Fact]
    public async Task A_redis_error_reply_is_counted()
    {
        await using var server = FakeServer.WithoutBanner(line => "-ERR unknown command\r\n");

        RunOutput run = await LoadGenerator.RunJsonAsync(server.Port, "--redis", "-n", "6", "-c", "2");

        Assert.Equal(1, run.ExitCode);
        Assert.Equal(6, run.Errors("wrong_reply"));
    }

    [Fact]
    public async Task Bad_usage_exits_2_with_one_line()
    {
        RunOutput run = await LoadGenerator.RunAsync("-c", "0");

        Assert.Equal(2, run.ExitCode);
        Assert.Empty(run.Output);
        Assert.StartsWith("tinyserver-loadgen: error: -c: '0'", run.Progress, StringComparison.Ordinal);
        Assert.Single(run.Progress.TrimEnd('\n').Split('\n'));
    }

    [Fact]
    public async Task Help_exits_0_with_the_usage()
    {
        RunOutput run = await LoadGenerator.RunAsync("--help");

        Assert.Equal(0, run.ExitCode);
        Assert.Contains("Usage:\n  TinyServer.LoadGen [options]\n", run.Output, StringComparison.Ordinal);
    }
}
