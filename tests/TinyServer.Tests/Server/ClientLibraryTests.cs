using TinyServer.ClientLibrary;
using TinyServer.Protocol;
using TinyServer.Tests.Cli;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Server;

[Trait("Tier", "unit")]
public class ClientLibraryTests
{
    [Fact]
    public async Task Connect_reads_the_banner_and_requests_get_their_replies()
    {
        await using TestServer server = await TestServer.StartAsync();
        using var deadline = new CancellationTokenSource(Timeouts.Read);
        await using TinyServerClient client = await TinyServerClient.ConnectAsync("127.0.0.1", server.Port, deadline.Token);
        Assert.Equal("WELCOME, I'm TinyServer not pressure", client.Banner);
        Assert.Equal("ECHO héllo ✓", await client.RequestAsync("ECHO héllo ✓", deadline.Token));
        Assert.Equal("ERROR UNKNOWN_COMMAND", await client.RequestAsync("FOO", deadline.Token));
        Assert.Equal("BYE", await client.RequestAsync("QUIT", deadline.Token));
        Assert.Null(await client.ReadReplyAsync(deadline.Token));
    }

    [Fact]
    public async Task A_banner_that_does_not_come_before_the_cancellation_is_a_banner_timeout()
    {
        // Accepts, then waits for the client to give up (the read ends when the client closes).
        await using var server = new ScriptedServer(socket => ScriptedServer.ReadLineAsync(socket));
        using var deadline = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));

        BannerTimeoutException error = await Assert.ThrowsAsync<BannerTimeoutException>(() => TinyServerClient.ConnectAsync("127.0.0.1", server.Port, deadline.Token));

        Assert.IsAssignableFrom<OperationCanceledException>(error);
        Assert.Equal(deadline.Token, error.CancellationToken);
        await server.Session.WaitAsync(Timeouts.Read); // The client closed its connection.
    }

    [Fact]
    public async Task Pipelined_requests_come_back_in_order()
    {
        await using TestServer server = await TestServer.StartAsync();
        using var deadline = new CancellationTokenSource(Timeouts.Read);
        await using TinyServerClient client = await TinyServerClient.ConnectAsync("localhost", server.Port, deadline.Token);
        string[] commands = [.. Enumerable.Range(0, 500).Select(i => $"ECHO {i}")];
        Assert.Equal(commands, await client.PipelineAsync(commands, deadline.Token));
    }

    [Fact]
    public async Task A_request_after_the_server_closed_reports_it()
    {
        await using TestServer server = await TestServer.StartAsync();
        using var deadline = new CancellationTokenSource(Timeouts.Read);
        await using TinyServerClient client = await TinyServerClient.ConnectAsync("127.0.0.1", server.Port, deadline.Token);
        await client.SendAsync(["QUIT", "TIME"], deadline.Token);
        Assert.Equal("BYE", await client.ReadReplyAsync(deadline.Token));
        Assert.Null(await client.ReadReplyAsync(deadline.Token));
    }

    [Fact]
    public async Task A_command_with_a_line_feed_is_refused_before_sending()
    {
        await using TestServer server = await TestServer.StartAsync();
        using var deadline = new CancellationTokenSource(Timeouts.Read);
        await using TinyServerClient client = await TinyServerClient.ConnectAsync("127.0.0.1", server.Port, deadline.Token);
        await Assert.ThrowsAsync<ArgumentException>(() => client.SendAsync("ECHO a\nTIME", deadline.Token));
        Assert.Equal("ECHO still fine", await client.RequestAsync("ECHO still fine", deadline.Token));
    }

    [Fact]
    public async Task A_read_waiting_beside_sends_gets_each_reply_then_the_shutdown_notice_then_the_close()
    {
        await using TestServer server = await TestServer.StartAsync();
        using var deadline = new CancellationTokenSource(Timeouts.Read);
        await using TinyServerClient client = await TinyServerClient.ConnectAsync("127.0.0.1", server.Port, deadline.Token);

        // The read is already waiting when each command goes out (a reader loop beside a writer loop).
        for (int i = 0; i < 3; i++)
        {
            Task<string?> reply = client.ReadReplyAsync(deadline.Token);
            await client.SendAsync($"ECHO {i}", deadline.Token);
            Assert.Equal($"ECHO {i}", await reply);
        }

        Task<string?> notice = client.ReadReplyAsync(deadline.Token);
        await server.StopAsync();
        Assert.Equal("ERROR SHUTTING_DOWN", await notice);
        Assert.True(ReplyReader.IsClosingNotice((await notice)!));
        Assert.Null(await client.ReadReplyAsync(deadline.Token));
    }

    [Theory]
    [InlineData("ERROR SHUTTING_DOWN", true)]
    [InlineData("ERROR IDLE_TIMEOUT", true)]
    [InlineData("error Idle_Timeout", true)]
    [InlineData("ERROR UNKNOWN_COMMAND", false)]
    [InlineData("ERROR LINE_TOO_LONG", false)]
    [InlineData("ERROR TOO_MANY_CONNECTIONS", false)]
    [InlineData("ERROR SHUTTING_DOWN NOW", false)]
    [InlineData("ECHO ERROR SHUTTING_DOWN", false)]
    [InlineData("SHUTTING_DOWN", false)]
    [InlineData("BYE", false)]
    [InlineData("", false)]
    public void A_closing_notice_is_told_from_a_reply(string line, bool notice) => Assert.Equal(notice, ReplyReader.IsClosingNotice(line));
}
