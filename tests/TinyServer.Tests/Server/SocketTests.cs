using System.Text;
using System.Text.RegularExpressions;
using TinyServer.Server;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Server;

/// <summary>The real server over loopback sockets. Every read is bounded by <see cref="Timeouts.Read"/>.</summary>
[Trait("Tier", "unit")]
public partial class SocketTests
{
    /// <summary>The transport these tests run on; <see cref="SocketTestsOnKestrelSockets"/> runs them all again on Kestrel's.</summary>
    protected virtual TransportKind Transport => TransportKind.Epoll;

    private Task<TestServer> StartAsync(ServerOptions? options = null) => TestServer.StartAsync((options ?? new ServerOptions()) with { Transport = Transport });

    [GeneratedRegex(@"^TIME \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")]
    private static partial Regex TimeReply();

    [Fact]
    public async Task The_original_sessions()
    {
        await using TestServer server = await StartAsync();
        await using (RawConnection first = await RawConnection.OpenAsync(server.EndPoint))
        {
            await first.SendAsync("TIME\n");
            Assert.Matches(TimeReply(), await first.ReadLineAsync());
            await first.SendAsync("QUIT\n");
            Assert.Equal("BYE", await first.ReadLineAsync());
            await first.AssertClosedAsync();
        }

        await using RawConnection second = await RawConnection.OpenAsync(server.EndPoint);
        await second.SendAsync("ECHO Hello from client\n");
        Assert.Equal("ECHO Hello from client", await second.ReadLineAsync());
        await second.SendAsync("QUIT\n");
        Assert.Equal("BYE", await second.ReadLineAsync());
        await second.AssertClosedAsync();
    }

    [Fact]
    public async Task A_thousand_pipelined_requests_in_one_write_are_answered_in_order()
    {
        await using TestServer server = await StartAsync();
        await using RawConnection connection = await RawConnection.OpenAsync(server.EndPoint);
        var requests = new StringBuilder();
        for (int i = 0; i < 1000; i++)
        {
            requests.Append((i % 4) switch { 0 => $"ECHO request {i}\n", 1 => "TIME\r\n", 2 => "help\n", _ => $"NOPE {i}\n" });
        }

        await connection.SendAsync(requests.ToString());
        for (int i = 0; i < 1000; i++)
        {
            string? reply = await connection.ReadLineAsync();
            switch (i % 4)
            {
                case 0: Assert.Equal($"ECHO request {i}", reply); break;
                case 1: Assert.Matches(TimeReply(), reply); break;
                case 2: Assert.Equal("HELP TIME | ECHO <text> | HELP | QUIT", reply); break;
                default: Assert.Equal("ERROR UNKNOWN_COMMAND", reply); break;
            }
        }
    }

    [Fact]
    public async Task Byte_by_byte_writes_give_the_same_replies()
    {
        await using TestServer server = await StartAsync();
        await using RawConnection connection = await RawConnection.OpenAsync(server.EndPoint);
        await connection.SendByteByByteAsync(Encoding.UTF8.GetBytes("ECHO one byte at a time\r\nTIME\nHELP x\nQUIT\n"));
        Assert.Equal(
            ["ECHO one byte at a time", "TIME", "ERROR BAD_ARGUMENTS", "BYE"],
            (await connection.ReadLinesToEndAsync()).Select(l => l.StartsWith("TIME ", StringComparison.Ordinal) ? "TIME" : l));
    }

    [Fact]
    public async Task Lines_after_QUIT_are_ignored()
    {
        await using TestServer server = await StartAsync();
        await using RawConnection connection = await RawConnection.OpenAsync(server.EndPoint);
        await connection.SendAsync("ECHO before\nQUIT\nECHO after\nTIME\n");
        Assert.Equal(["ECHO before", "BYE"], await connection.ReadLinesToEndAsync());
    }

    [Fact]
    public async Task After_half_close_every_line_is_answered_then_the_server_closes()
    {
        await using TestServer server = await StartAsync();
        await using RawConnection connection = await RawConnection.OpenAsync(server.EndPoint);
        await connection.SendAsync("ECHO first\nHELP\nECHO last line without LF");
        connection.ShutdownSend();
        Assert.Equal(
            ["ECHO first", "HELP TIME | ECHO <text> | HELP | QUIT", "ECHO last line without LF"],
            await connection.ReadLinesToEndAsync());
    }

    [Fact]
    public async Task Two_hundred_concurrent_clients_each_get_their_own_replies()
    {
        await using TestServer server = await StartAsync();
        RawConnection[] clients = await Task.WhenAll(Enumerable.Range(0, 200).Select(_ => RawConnection.OpenAsync(server.EndPoint)));
        try
        {
            await Task.WhenAll(clients.Select(async (client, id) =>
            {
                for (int round = 0; round < 5; round++)
                {
                    await client.SendAsync($"ECHO client {id} round {round}\n");
                    Assert.Equal($"ECHO client {id} round {round}", await client.ReadLineAsync());
                }

                await client.SendAsync("TIME\nQUIT\n");
                Assert.Matches(TimeReply(), await client.ReadLineAsync());
                Assert.Equal("BYE", await client.ReadLineAsync());
                await client.AssertClosedAsync();
            }));
        }
        finally
        {
            foreach (RawConnection client in clients)
            {
                await client.DisposeAsync();
            }
        }
    }

    [Theory]
    [InlineData(31)]
    [InlineData(32)]
    public async Task Lines_up_to_the_configured_maximum_are_answered(int length)
    {
        await using TestServer server = await StartAsync(new ServerOptions { MaxLineLength = 32 });
        await using RawConnection connection = await RawConnection.OpenAsync(server.EndPoint);
        string line = "ECHO " + new string('y', length - 5);
        await connection.SendAsync(line + "\r\n" + line + "\n");
        Assert.Equal(line, await connection.ReadLineAsync());
        Assert.Equal(line, await connection.ReadLineAsync());
    }

    [Fact]
    public async Task A_line_one_over_the_configured_maximum_is_refused_and_the_connection_closed()
    {
        await using TestServer server = await StartAsync(new ServerOptions { MaxLineLength = 32 });
        await using RawConnection connection = await RawConnection.OpenAsync(server.EndPoint);
        await connection.SendAsync("TIME\nECHO " + new string('y', 28) + "\nTIME\n");
        Assert.Matches(TimeReply(), await connection.ReadLineAsync());
        Assert.Equal(["ERROR LINE_TOO_LONG"], await connection.ReadLinesToEndAsync());
    }

    [Fact]
    public async Task The_default_maximum_holds_a_16_KiB_line_and_refuses_a_longer_one()
    {
        await using TestServer server = await StartAsync();
        await using RawConnection connection = await RawConnection.OpenAsync(server.EndPoint);
        string longest = "ECHO " + new string('z', 16 * 1024 - 5);
        await connection.SendAsync(longest + "\n");
        Assert.Equal(longest, await connection.ReadLineAsync());
        await connection.SendAsync(longest + "z\n");
        Assert.Equal(["ERROR LINE_TOO_LONG"], await connection.ReadLinesToEndAsync());
    }

    [Fact]
    public async Task The_largest_configurable_line_fits_through_the_input_pipe()
    {
        int max = ServerOptions.MaxLineLengthLimit;
        await using TestServer server = await StartAsync(new ServerOptions { MaxLineLength = max });
        await using RawConnection connection = await RawConnection.OpenAsync(server.EndPoint);
        string longest = "ECHO " + new string('m', max - 5);
        Task send = connection.SendAsync(longest + "\r\n");
        Assert.Equal(longest, await connection.ReadLineAsync());
        await send;
        await connection.SendAsync(longest + "m");
        Assert.Equal(["ERROR LINE_TOO_LONG"], await connection.ReadLinesToEndAsync());
    }

    [Fact]
    public async Task A_megabyte_without_a_newline_gets_the_error_line_before_the_close()
    {
        await using TestServer server = await StartAsync();
        await using RawConnection connection = await RawConnection.OpenAsync(server.EndPoint);
        Task send = connection.SendAsync(Enumerable.Repeat((byte)'a', 1024 * 1024).ToArray());
        Assert.Equal(["ERROR LINE_TOO_LONG"], await connection.ReadLinesToEndAsync());
        await send.ContinueWith(_ => { }, TaskScheduler.Default); // Whether the rest fit in socket buffers or was reset does not matter.
    }
}

/// <summary>The same tests on Kestrel's socket transport (<c>--transport sockets</c>).</summary>
[Trait("Tier", "unit")]
public sealed class SocketTestsOnKestrelSockets : SocketTests
{
    protected override TransportKind Transport => TransportKind.Sockets;
}
