using System.Net.Sockets;
using System.Text;
using TinyServer.Server;
using TinyServer.Tests.Infrastructure;
using static TinyServer.Tests.Cli.ClientTests;

namespace TinyServer.Tests.Cli;

/// <summary>
/// The client with its standard input a pipe kept open: it connects first, sends each line as it is read, prints each
/// reply as it comes, prints what the server sends unasked, and exits 5 at once when the server closes.
/// </summary>
[Trait("Tier", "process")]
public class ClientStreamingTests
{
    private const string Banner = "<- WELCOME, I'm TinyServer not pressure";
    private const string ServerClosed = "tinyserver-client: the server closed the connection\n";
    private static readonly byte[] BannerLine = Encoding.ASCII.GetBytes("WELCOME, I'm TinyServer not pressure\n");

    /// <summary>How long a reply may take to show while the input is still open (a loaded machine included).</summary>
    private static readonly TimeSpan Promptly = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task Piped_lines_are_sent_and_answered_one_by_one_while_the_input_is_still_open()
    {
        await using TestServer server = await TestServer.StartAsync();
        await using ClientProcess client = ClientProcess.Start("127.0.0.1", server.Port.ToString());

        // It connects before any input arrives.
        Assert.Equal($"CONNECT to 127.0.0.1:{server.Port}", await client.ReadLineAsync(Timeouts.Read));
        Assert.Equal(Banner, await client.ReadLineAsync(Promptly));

        await client.WriteAsync("TIME\n");
        Assert.Equal("-> TIME", await client.ReadLineAsync(Promptly));
        Assert.StartsWith("<- TIME 20", await client.ReadLineAsync(Promptly), StringComparison.Ordinal);

        await client.WriteAsync("ECHO two\r\n\n");
        Assert.Equal("-> ECHO two", await client.ReadLineAsync(Promptly));
        Assert.Equal("<- ECHO two", await client.ReadLineAsync(Promptly));

        await client.WriteAsync("HELP\n");
        client.CloseInput();
        ProcessResult result = await client.WaitForExitAsync(Timeouts.Read);

        Assert.Equal(0, result.ExitCode);
        Assert.Equal(
            Lines($"CONNECT to 127.0.0.1:{server.Port}", Banner, "-> TIME", client.Output[3], "-> ECHO two", "<- ECHO two", "-> HELP", "<- HELP TIME | ECHO <text> | HELP | QUIT", "-> QUIT", "<- BYE"),
            result.StandardOutput);
        Assert.Equal("", result.StandardError);
    }

    [Fact]
    public async Task A_piped_QUIT_ends_the_session_without_waiting_for_the_end_of_input()
    {
        await using TestServer server = await TestServer.StartAsync();
        await using ClientProcess client = ClientProcess.Start("127.0.0.1", server.Port.ToString());

        await client.WriteAsync("ECHO one\nquit\nECHO never sent\n");
        ProcessResult result = await client.WaitForExitAsync(Timeouts.Read);

        Assert.Equal(0, result.ExitCode);
        Assert.Equal(Lines($"CONNECT to 127.0.0.1:{server.Port}", Banner, "-> ECHO one", "<- ECHO one", "-> quit", "<- BYE"), result.StandardOutput);
        Assert.Equal("", result.StandardError);
    }

    [Fact]
    public async Task Lines_piped_faster_than_the_replies_come_are_each_printed_before_their_reply_in_order()
    {
        await using TestServer server = await TestServer.StartAsync();
        await using ClientProcess client = ClientProcess.Start("127.0.0.1", server.Port.ToString());
        string[] commands = [.. Enumerable.Range(0, 2000).Select(i => i % 100 == 7 ? "FOO" : $"ECHO {i} {new string('x', i % 300)}")];

        await client.WriteAsync(string.Concat(commands.Select(command => command + "\n")));
        client.CloseInput();
        ProcessResult result = await client.WaitForExitAsync(Timeouts.Process);

        Assert.Equal(1, result.ExitCode);
        string[] transcript = [.. commands.SelectMany(command => new[] { "-> " + command, "<- " + (command == "FOO" ? "ERROR UNKNOWN_COMMAND" : command) })];
        Assert.Equal(Lines([$"CONNECT to 127.0.0.1:{server.Port}", Banner, .. transcript, "-> QUIT", "<- BYE"]), result.StandardOutput);
        Assert.Equal(20, result.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries).Count(line => line == "tinyserver-client: 'FOO' got an error reply: ERROR UNKNOWN_COMMAND"));
    }

    [Theory]
    [InlineData(TransportKind.Epoll, false)]
    [InlineData(TransportKind.Epoll, true)]
    [InlineData(TransportKind.Sockets, false)]
    [InlineData(TransportKind.Sockets, true)]
    public async Task A_server_shutting_down_is_printed_and_ends_the_client_with_5_while_the_input_is_open(TransportKind transport, bool interactive)
    {
        await using ServerProcess server = await ServerProcess.StartAsync(["--port", "0", "--bind", "127.0.0.1", "--transport", transport.ToString().ToLowerInvariant()]);
        string port = server.EndPoint.Port.ToString();
        await using ClientProcess client = ClientProcess.Start(interactive ? ["--interactive", "127.0.0.1", port] : ["127.0.0.1", port]);
        Assert.Equal($"CONNECT to 127.0.0.1:{port}", await client.ReadLineAsync(Timeouts.Read));
        Assert.Equal(Banner, await client.ReadLineAsync(Promptly));
        await client.WriteAsync("ECHO before\n");
        Assert.Equal(interactive ? "> <- ECHO before" : "-> ECHO before", await client.ReadLineAsync(Promptly));
        if (!interactive)
        {
            Assert.Equal("<- ECHO before", await client.ReadLineAsync(Promptly));
        }

        server.Terminate();

        // Nothing more is typed or piped: the client hears the notice and the close on its own.
        Assert.Equal(interactive ? "> <- ERROR SHUTTING_DOWN" : "<- ERROR SHUTTING_DOWN", await client.ReadLineAsync(Timeouts.Read));
        ProcessResult result = await client.WaitForExitAsync(Timeouts.Read);
        Assert.Equal(5, result.ExitCode);
        Assert.Equal(ServerClosed, result.StandardError);
        Assert.Equal(0, await server.WaitForExitAsync());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task An_idle_timeout_notice_is_printed_and_the_close_exits_5_while_the_input_is_open(bool interactive)
    {
        await using var server = new ScriptedServer(async socket =>
        {
            await socket.SendAsync(BannerLine, SocketFlags.None).WaitAsync(Timeouts.Read);
            await socket.SendAsync("ERROR IDLE_TIMEOUT\n"u8.ToArray(), SocketFlags.None).WaitAsync(Timeouts.Read);
            socket.Shutdown(SocketShutdown.Both);
        });
        string port = server.Port.ToString();
        await using ClientProcess client = ClientProcess.Start(interactive ? ["-i", "127.0.0.1", port] : ["127.0.0.1", port]);

        ProcessResult result = await client.WaitForExitAsync(Timeouts.Read);

        Assert.Equal(5, result.ExitCode);
        Assert.Equal(Lines($"CONNECT to 127.0.0.1:{port}", Banner, (interactive ? "> " : "") + "<- ERROR IDLE_TIMEOUT"), result.StandardOutput);
        Assert.Equal(ServerClosed, result.StandardError);
    }

    [Fact]
    public async Task A_close_with_a_piped_command_unanswered_names_the_command_while_the_input_is_open()
    {
        await using var server = new ScriptedServer(async socket =>
        {
            await socket.SendAsync(BannerLine, SocketFlags.None).WaitAsync(Timeouts.Read);
            Assert.Equal("TIME\n", await ScriptedServer.ReadLineAsync(socket));
            await socket.SendAsync("ERROR SHUTTING_DOWN\n"u8.ToArray(), SocketFlags.None).WaitAsync(Timeouts.Read);
            socket.Shutdown(SocketShutdown.Both);
        });
        await using ClientProcess client = ClientProcess.Start("127.0.0.1", server.Port.ToString());

        await client.WriteAsync("TIME\n");
        ProcessResult result = await client.WaitForExitAsync(Timeouts.Read);

        Assert.Equal(5, result.ExitCode);
        Assert.Equal(Lines($"CONNECT to 127.0.0.1:{server.Port}", Banner, "-> TIME", "<- ERROR SHUTTING_DOWN"), result.StandardOutput);
        Assert.Equal("tinyserver-client: the server closed the connection before replying to 'TIME'\n", result.StandardError);
        await server.Session.WaitAsync(Timeouts.Read);
    }

    [Fact]
    public async Task A_reset_while_the_input_is_open_exits_5_with_one_line_and_no_stack_trace()
    {
        await using var server = new ScriptedServer(async socket =>
        {
            await socket.SendAsync(BannerLine, SocketFlags.None).WaitAsync(Timeouts.Read);
            await ScriptedServer.ReadLineAsync(socket);
            socket.LingerState = new LingerOption(true, 0);
            socket.Close();
        });
        await using ClientProcess client = ClientProcess.Start("127.0.0.1", server.Port.ToString());

        await client.WriteAsync("TIME\n");
        ProcessResult result = await client.WaitForExitAsync(Timeouts.Read);

        Assert.Equal(5, result.ExitCode);
        Assert.Equal(Lines($"CONNECT to 127.0.0.1:{server.Port}", Banner, "-> TIME"), result.StandardOutput);
        string line = Assert.Single(result.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("tinyserver-client: connection lost: ", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_reply_that_never_comes_exits_4_after_the_timeout_while_the_input_is_open()
    {
        await using var server = new ScriptedServer(async socket =>
        {
            await socket.SendAsync(BannerLine, SocketFlags.None).WaitAsync(Timeouts.Read);
            await ScriptedServer.ReadLineAsync(socket); // TIME, never answered
            await ScriptedServer.ReadLineAsync(socket); // until the client gives up and closes
        });
        await using ClientProcess client = ClientProcess.Start("--timeout", "1.5", "127.0.0.1", server.Port.ToString());
        Assert.Equal($"CONNECT to 127.0.0.1:{server.Port}", await client.ReadLineAsync(Timeouts.Read));
        Assert.Equal(Banner, await client.ReadLineAsync(Promptly));

        await client.WriteAsync("TIME\n");
        ProcessResult result = await client.WaitForExitAsync(Timeouts.Read);

        Assert.Equal(4, result.ExitCode);
        Assert.Equal(Lines($"CONNECT to 127.0.0.1:{server.Port}", Banner, "-> TIME"), result.StandardOutput);
        Assert.Equal($"tinyserver-client: timed out after 1.5 s waiting for 127.0.0.1:{server.Port}\n", result.StandardError);
    }

    [Fact]
    public async Task A_server_that_stops_reading_then_resets_while_a_send_is_blocked_exits_5_without_a_stack_trace()
    {
        // The server reads nothing: the client's sends fill the socket buffers and block. Then the server says it is
        // shutting down and closes with the client's data unread, which resets the connection under the blocked send.
        await using var server = new ScriptedServer(async socket =>
        {
            await socket.SendAsync(BannerLine, SocketFlags.None).WaitAsync(Timeouts.Read);
            await Task.Delay(TimeSpan.FromSeconds(3));
            await socket.SendAsync("ERROR SHUTTING_DOWN\n"u8.ToArray(), SocketFlags.None).WaitAsync(Timeouts.Read);
            socket.Close();
        });
        await using ClientProcess client = ClientProcess.Start("--timeout", "30", "127.0.0.1", server.Port.ToString());
        string line = "ECHO " + new string('x', 1000) + "\n";
        using var feeding = new CancellationTokenSource(Timeouts.Read);
        Task feed = Task.Run(async () =>
        {
            for (int i = 0; i < 30_000 && !feeding.IsCancellationRequested; i++)
            {
                await client.WriteAsync(line); // Blocks once the client stops reading its input.
            }
        });

        ProcessResult result = await client.WaitForExitAsync(Timeouts.Read);
        await feeding.CancelAsync();
        await feed.ContinueWith(_ => { }, TaskScheduler.Default).WaitAsync(Timeouts.Process);

        Assert.Equal(5, result.ExitCode);
        Assert.StartsWith(Lines($"CONNECT to 127.0.0.1:{server.Port}", Banner, "-> " + line.TrimEnd()), result.StandardOutput, StringComparison.Ordinal);
        string error = Assert.Single(result.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Matches("^tinyserver-client: (connection lost: |the server closed the connection)", error);
    }
}
