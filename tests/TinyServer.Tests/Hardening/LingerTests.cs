using System.Diagnostics;
using System.Net.Sockets;
using TinyServer.Server;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Hardening;

/// <summary>
/// After its last reply the server drains the client's input before closing, so that the close is not a reset that
/// throws away replies still on their way.
/// </summary>
[Trait("Tier", "process")]
public class LingerTests
{
    /// <summary>The transport these tests run on; <see cref="LingerTestsOnKestrelSockets"/> runs them all again on Kestrel's.</summary>
    protected virtual TransportKind Transport => TransportKind.Epoll;

    private Task<TestServer> StartAsync(ServerOptions? options = null) => TestServer.StartAsync((options ?? new ServerOptions()) with { Transport = Transport });

    [Fact]
    public async Task Replies_queued_behind_a_slow_reader_survive_a_QUIT_followed_by_more_data()
    {
        await using TestServer server = await StartAsync();
        for (int run = 0; run < 3; run++)
        {
            using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
            await socket.ConnectAsync(server.EndPoint).WaitAsync(Timeouts.Read);
            byte[] requests = [.. System.Text.Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("ECHO hi\n", 10_000)) + "QUIT\n"), .. new byte[1_000_000]];
            int sent = 0;
            using (var sending = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
            {
                try
                {
                    while (sent < requests.Length)
                    {
                        sent += await socket.SendAsync(requests.AsMemory(sent), SocketFlags.None, sending.Token);
                    }
                }
                catch (OperationCanceledException)
                {
                    // The server may stop reading once it has answered QUIT and drained what it will.
                }
            }

            await Task.Delay(300);
            byte[] received = await ReadToEndAsync(socket);
            string expected = "WELCOME, I'm TinyServer not pressure\n" + string.Concat(Enumerable.Repeat("ECHO hi\n", 10_000)) + "BYE\n";
            Assert.Equal(expected.Length, received.Length);
        }
    }

    [Fact]
    public async Task A_client_that_keeps_sending_after_QUIT_is_closed_by_the_linger_timeout()
    {
        await using TestServer server = await StartAsync(new ServerOptions { LingerTimeoutSeconds = 1 });
        await using RawConnection client = await RawConnection.OpenAsync(server.EndPoint);
        await client.SendAsync("QUIT\n");
        Assert.Equal("BYE", await client.ReadLineAsync());
        var lingering = Stopwatch.StartNew();
        Task<List<string>> rest = client.ReadLinesToEndAsync();
        while (!rest.IsCompleted && lingering.Elapsed < TimeSpan.FromSeconds(10))
        {
            try
            {
                await client.SendAsync("more and more\n"); // Never stopping: only the linger timeout ends it.
            }
            catch (SocketException)
            {
                break;
            }

            await Task.Delay(10);
        }

        Assert.Empty(await rest);
        Assert.True(lingering.Elapsed < TimeSpan.FromSeconds(4), $"closed after {lingering.Elapsed.TotalSeconds:0.0} s, 10 s of sending");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    public async Task A_client_that_stops_sending_is_closed_at_once(int lingerSeconds)
    {
        await using TestServer server = await StartAsync(new ServerOptions { LingerTimeoutSeconds = lingerSeconds });
        await using RawConnection client = await RawConnection.OpenAsync(server.EndPoint);
        var closing = Stopwatch.StartNew();
        await client.SendAsync("QUIT\n");
        Assert.Equal(["BYE"], await client.ReadLinesToEndAsync());
        // The quiet period (100 ms), not the 2 s timeout: under 2 s whatever the load on the machine.
        Assert.True(closing.Elapsed < TimeSpan.FromSeconds(1.9), $"closed after {closing.Elapsed.TotalMilliseconds} ms");
    }

    private static async Task<byte[]> ReadToEndAsync(Socket socket)
    {
        var received = new List<byte>();
        byte[] buffer = new byte[65536];
        while (true)
        {
            int n;
            try
            {
                n = await socket.ReceiveAsync(buffer, SocketFlags.None).WaitAsync(Timeouts.Read);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
            {
                n = 0; // A reset after everything arrived still counts what arrived.
            }

            if (n == 0)
            {
                return [.. received];
            }

            received.AddRange(buffer.AsSpan(0, n));
        }
    }
}

/// <summary>The same tests on Kestrel's socket transport (<c>--transport sockets</c>).</summary>
[Trait("Tier", "process")]
public sealed class LingerTestsOnKestrelSockets : LingerTests
{
    protected override TransportKind Transport => TransportKind.Sockets;
}
