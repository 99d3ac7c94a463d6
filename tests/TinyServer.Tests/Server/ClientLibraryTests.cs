using TinyServer.ClientLibrary;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Server;

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
}
