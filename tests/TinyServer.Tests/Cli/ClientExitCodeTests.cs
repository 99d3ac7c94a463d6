using System.Net;
using System.Net.Sockets;
using System.Text;
using TinyServer.Tests.Infrastructure;
using static TinyServer.Tests.Cli.ClientTests;

namespace TinyServer.Tests.Cli;

/// <summary>The client's exit codes: 0 ok, 1 an ERROR reply, 2 bad usage, 3 cannot connect, 4 timeout, 5 server closed.</summary>
[Trait("Tier", "process")]
public class ClientExitCodeTests
{
    private static readonly byte[] BannerLine = Encoding.ASCII.GetBytes("WELCOME, I'm TinyServer not pressure\n");

    [Fact]
    public async Task An_error_reply_exits_1_after_finishing_the_session_and_says_so_on_stderr()
    {
        await using TestServer server = await TestServer.StartAsync();

        ProcessResult result = await RunClientAsync(standardInput: "", "127.0.0.1", server.Port.ToString(), "FOO", "ECHO still here");

        Assert.Equal(1, result.ExitCode);
        Assert.Equal(
            Lines(
                $"CONNECT to 127.0.0.1:{server.Port}",
                "<- WELCOME, I'm TinyServer not pressure",
                "-> FOO",
                "<- ERROR UNKNOWN_COMMAND",
                "-> ECHO still here",
                "<- ECHO still here",
                "-> QUIT",
                "<- BYE"),
            result.StandardOutput);
        Assert.Equal("tinyserver-client: 'FOO' got an error reply: ERROR UNKNOWN_COMMAND\n", result.StandardError);
    }

    [Theory]
    [InlineData("")]
    [InlineData("127.0.0.1")]
    [InlineData("127.0.0.1|x")]
    [InlineData("127.0.0.1|0")]
    [InlineData("127.0.0.1|65536")]
    [InlineData("--frobnicate|127.0.0.1|1")]
    [InlineData("--timeout|bad|127.0.0.1|1")]
    [InlineData("--timeout|0|127.0.0.1|1")]
    [InlineData("127.0.0.1|1|--timeout")]
    [InlineData("--interactive|127.0.0.1|1|TIME")]
    [InlineData("--interactive|--demo|127.0.0.1|1")]
    [InlineData("127.0.0.1|1|ECHO a\nTIME")]
    public async Task Bad_usage_exits_2_without_connecting(string arguments)
    {
        ProcessResult result = await RunClientAsync(standardInput: "", arguments.Split('|', StringSplitOptions.RemoveEmptyEntries));

        Assert.Equal(2, result.ExitCode);
        Assert.Equal("", result.StandardOutput); // Not even "CONNECT to".
        Assert.StartsWith("tinyserver-client: ", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_bad_port_is_named_on_stderr()
    {
        ProcessResult result = await RunClientAsync(standardInput: "", "127.0.0.1", "x");

        Assert.Equal(2, result.ExitCode);
        Assert.StartsWith("tinyserver-client: 'x' is not a port (1-65535)\n", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unknown_option_is_named_on_stderr()
    {
        ProcessResult result = await RunClientAsync(standardInput: "", "--frobnicate", "127.0.0.1", "1");

        Assert.Equal(2, result.ExitCode);
        Assert.StartsWith("tinyserver-client: unknown option '--frobnicate'\n", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_port_nobody_listens_on_exits_3()
    {
        // Bound but not listening: connecting is refused, and no other program can take the port meanwhile.
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        int port = ((IPEndPoint)socket.LocalEndPoint!).Port;

        ProcessResult result = await RunClientAsync(standardInput: "", "127.0.0.1", port.ToString(), "TIME");

        Assert.Equal(3, result.ExitCode);
        Assert.Equal(Lines($"CONNECT to 127.0.0.1:{port}"), result.StandardOutput);
        Assert.StartsWith($"tinyserver-client: cannot connect to 127.0.0.1:{port}: ", result.StandardError, StringComparison.Ordinal);
        Assert.Single(result.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public async Task A_demo_whose_second_connection_is_refused_exits_3()
    {
        // Serves the demo's first connection (TIME, QUIT), then is gone: the second connection is refused.
        await using var server = new ScriptedServer(async socket =>
        {
            await socket.SendAsync(BannerLine, SocketFlags.None).WaitAsync(Timeouts.Read);
            Assert.Equal("TIME\n", await ScriptedServer.ReadLineAsync(socket));
            await socket.SendAsync(Encoding.ASCII.GetBytes("TIME 2025-01-02T03:04:05+00:00\n"), SocketFlags.None).WaitAsync(Timeouts.Read);
            Assert.Equal("QUIT\n", await ScriptedServer.ReadLineAsync(socket));
            await socket.SendAsync(Encoding.ASCII.GetBytes("BYE\n"), SocketFlags.None).WaitAsync(Timeouts.Read);
        });

        ProcessResult result = await RunClientAsync(standardInput: "", "127.0.0.1", server.Port.ToString());

        Assert.Equal(
            Lines(
                $"CONNECT to 127.0.0.1:{server.Port}",
                "<- WELCOME, I'm TinyServer not pressure",
                "-> TIME",
                "<- TIME 2025-01-02T03:04:05+00:00",
                "-> QUIT",
                "<- BYE",
                $"CONNECT to 127.0.0.1:{server.Port}"),
            result.StandardOutput);
        Assert.DoesNotContain("   at ", result.StandardError, StringComparison.Ordinal);
        Assert.StartsWith($"tinyserver-client: cannot connect to 127.0.0.1:{server.Port}: ", result.StandardError, StringComparison.Ordinal);
        Assert.Equal(3, result.ExitCode);
    }

    [Fact]
    public async Task A_server_that_never_sends_its_banner_exits_4_after_the_timeout()
    {
        // Accepts, then waits for the client to give up (the read ends when the client closes).
        string sentByClient = "not read";
        await using var server = new ScriptedServer(async socket => sentByClient = await ScriptedServer.ReadLineAsync(socket));

        ProcessResult result = await RunClientAsync(standardInput: "", "--timeout", "1", "127.0.0.1", server.Port.ToString(), "TIME");

        Assert.Equal(4, result.ExitCode);
        Assert.Equal(Lines($"CONNECT to 127.0.0.1:{server.Port}"), result.StandardOutput);
        Assert.Equal(
            $"tinyserver-client: timed out after 1 s waiting for 127.0.0.1:{server.Port}: connected, but no banner came (is this a TLS port? try --tls)\n",
            result.StandardError);
        await server.Session.WaitAsync(Timeouts.Read);
        Assert.Equal("", sentByClient); // The client sends nothing before the banner.
    }

    [Fact]
    public async Task A_reply_that_never_comes_exits_4_after_the_timeout()
    {
        await using var server = new ScriptedServer(async socket =>
        {
            await socket.SendAsync(BannerLine, SocketFlags.None).WaitAsync(Timeouts.Read);
            await ScriptedServer.ReadLineAsync(socket); // TIME, never answered
            await ScriptedServer.ReadLineAsync(socket); // until the client gives up and closes
        });

        // Long enough for the banner to arrive on a loaded machine: the limit applies to the banner too.
        ProcessResult result = await RunClientAsync(standardInput: "", "--timeout", "2.5", "127.0.0.1", server.Port.ToString(), "TIME");

        Assert.Equal(4, result.ExitCode);
        Assert.Equal(Lines($"CONNECT to 127.0.0.1:{server.Port}", "<- WELCOME, I'm TinyServer not pressure", "-> TIME"), result.StandardOutput);
        Assert.StartsWith("tinyserver-client: timed out after 2.5 s", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_server_that_closes_after_a_command_exits_5()
    {
        string command = "";
        await using var server = new ScriptedServer(async socket =>
        {
            await socket.SendAsync(BannerLine, SocketFlags.None).WaitAsync(Timeouts.Read);
            command = await ScriptedServer.ReadLineAsync(socket);
            socket.Shutdown(SocketShutdown.Both);
        });

        ProcessResult result = await RunClientAsync(standardInput: "", "127.0.0.1", server.Port.ToString(), "TIME");

        Assert.Equal(5, result.ExitCode);
        Assert.Equal(Lines($"CONNECT to 127.0.0.1:{server.Port}", "<- WELCOME, I'm TinyServer not pressure", "-> TIME"), result.StandardOutput);
        Assert.Equal("tinyserver-client: the server closed the connection before replying to 'TIME'\n", result.StandardError);
        await server.Session.WaitAsync(Timeouts.Read);
        Assert.Equal("TIME\n", command);
    }

    [Fact]
    public async Task A_server_that_closes_before_its_banner_exits_5()
    {
        await using var server = new ScriptedServer(socket =>
        {
            socket.Shutdown(SocketShutdown.Both);
            return Task.CompletedTask;
        });

        ProcessResult result = await RunClientAsync(standardInput: "", "127.0.0.1", server.Port.ToString(), "TIME");

        Assert.Equal(5, result.ExitCode);
        Assert.Equal(Lines($"CONNECT to 127.0.0.1:{server.Port}"), result.StandardOutput);
        Assert.Equal("tinyserver-client: the server closed the connection before its banner\n", result.StandardError);
    }

    [Fact]
    public async Task A_reply_cut_short_by_the_close_exits_5()
    {
        await using var server = new ScriptedServer(async socket =>
        {
            await socket.SendAsync(BannerLine, SocketFlags.None).WaitAsync(Timeouts.Read);
            await ScriptedServer.ReadLineAsync(socket);
            await socket.SendAsync("BY"u8.ToArray(), SocketFlags.None).WaitAsync(Timeouts.Read);
            socket.Shutdown(SocketShutdown.Both);
        });

        ProcessResult result = await RunClientAsync(standardInput: "", "127.0.0.1", server.Port.ToString(), "QUIT");

        Assert.Equal(5, result.ExitCode);
        Assert.Equal("tinyserver-client: the server closed the connection in the middle of a reply\n", result.StandardError);
    }

    [Fact]
    public async Task A_reset_before_the_banner_exits_5()
    {
        await using var server = new ScriptedServer(socket =>
        {
            socket.LingerState = new LingerOption(true, 0);
            socket.Close();
            return Task.CompletedTask;
        });

        ProcessResult result = await RunClientAsync(standardInput: "", "127.0.0.1", server.Port.ToString(), "TIME");

        Assert.Equal(5, result.ExitCode);
        Assert.Equal(Lines($"CONNECT to 127.0.0.1:{server.Port}"), result.StandardOutput);
    }

    [Fact]
    public async Task A_peer_that_is_not_a_TinyServer_exits_6()
    {
        await using var server = new ScriptedServer(async socket =>
        {
            await socket.SendAsync("HTTP/1.1 400 Bad Request\r\n\r\n"u8.ToArray(), SocketFlags.None).WaitAsync(Timeouts.Read);
            socket.Shutdown(SocketShutdown.Both);
        });

        ProcessResult result = await RunClientAsync(standardInput: "", "127.0.0.1", server.Port.ToString(), "TIME");

        Assert.Equal(6, result.ExitCode);
        Assert.Equal("tinyserver-client: not a TinyServer: it greeted with 'HTTP/1.1 400 Bad Request'\n", result.StandardError);
    }
}
