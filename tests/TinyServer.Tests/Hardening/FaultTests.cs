using System.Net.Sockets;
using System.Text;
using TinyServer.Server;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Hardening;

/// <summary>Peers that misbehave at the transport level: nothing logged above Debug, no connection leaked.</summary>
[Trait("Tier", "unit")]
public class FaultTests
{
    /// <summary>The transport these tests run on; <see cref="FaultTestsOnKestrelSockets"/> runs them all again on Kestrel's.</summary>
    protected virtual TransportKind Transport => TransportKind.Epoll;

    private Task<TestServer> StartAsync(ServerOptions? options = null) => TestServer.StartAsync((options ?? new ServerOptions()) with { Transport = Transport });

    [Fact]
    public async Task Peers_that_reset_mid_request_and_mid_reply_leave_nothing_behind()
    {
        await using TestServer server = await StartAsync();
        byte[] pipeline = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("ECHO " + new string('r', 200) + "\n", 5000)));
        for (int i = 0; i < 20; i++)
        {
            using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(server.EndPoint).WaitAsync(Timeouts.Read);
            switch (i % 4)
            {
                case 0: // Mid-request: half a line, then a reset.
                    await socket.SendAsync("ECHO half a li"u8.ToArray()).WaitAsync(Timeouts.Read);
                    break;
                case 1: // Mid-reply: a megabyte of replies on their way, then a reset.
                    await socket.SendAsync(pipeline).WaitAsync(Timeouts.Read);
                    byte[] some = new byte[100];
                    await socket.ReceiveAsync(some).WaitAsync(Timeouts.Read);
                    break;
                case 2: // Before even reading the banner.
                    break;
                default: // Half-open: sends, half-closes, and resets while the server answers.
                    await socket.SendAsync(pipeline).WaitAsync(Timeouts.Read);
                    socket.Shutdown(SocketShutdown.Send);
                    break;
            }

            socket.LingerState = new LingerOption(true, 0); // Close with RST.
        }

        await server.WaitForAllClosedAsync(accepted: 20);
        Assert.Empty(server.Warnings);

        await using RawConnection fresh = await RawConnection.OpenAsync(server.EndPoint);
        await fresh.SendAsync("TIME\n");
        Assert.StartsWith("TIME ", await fresh.ReadLineAsync());
    }

    [Fact]
    public async Task A_peer_that_vanishes_without_a_word_is_counted_out()
    {
        await using TestServer server = await StartAsync();
        var sockets = new List<Socket>();
        for (int i = 0; i < 50; i++)
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(server.EndPoint).WaitAsync(Timeouts.Read);
            await socket.SendAsync("ECHO a\nECHO b\nTI"u8.ToArray()).WaitAsync(Timeouts.Read);
            sockets.Add(socket);
        }

        foreach (Socket socket in sockets)
        {
            socket.Dispose();
        }

        await server.WaitForAllClosedAsync(accepted: 50);
        Assert.Empty(server.Warnings);
    }
}

/// <summary>The same tests on Kestrel's socket transport (<c>--transport sockets</c>).</summary>
[Trait("Tier", "unit")]
public sealed class FaultTestsOnKestrelSockets : FaultTests
{
    protected override TransportKind Transport => TransportKind.Sockets;
}
