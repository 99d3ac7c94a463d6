using System.Net.Sockets;
using TinyServer.Server;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Hardening;

/// <summary>Connection limit and idle timeout over real sockets, each at the limit, one below and one above.</summary>
[Trait("Tier", "process")]
public class LimitTests
{
    /// <summary>The transport these tests run on; <see cref="LimitTestsOnKestrelSockets"/> runs them all again on Kestrel's.</summary>
    protected virtual TransportKind Transport => TransportKind.Epoll;

    private Task<TestServer> StartAsync(ServerOptions? options = null) => TestServer.StartAsync((options ?? new ServerOptions()) with { Transport = Transport });

    [Fact]
    public async Task The_eleventh_client_of_ten_is_told_and_closed_while_the_ten_are_served()
    {
        await using TestServer server = await StartAsync(new ServerOptions { MaxConnections = 10 });
        var clients = new List<RawConnection>();
        try
        {
            for (int i = 0; i < 10; i++)
            {
                clients.Add(await RawConnection.OpenAsync(server.EndPoint)); // The ninth (one below) and tenth (at the limit) too.
            }

            await using (RawConnection eleventh = await RawConnection.ConnectAsync(server.EndPoint))
            {
                Assert.Equal(["ERROR TOO_MANY_CONNECTIONS"], await eleventh.ReadLinesToEndAsync());
            }

            Assert.Equal(1, server.Tracker.Rejected);
            foreach (RawConnection client in clients)
            {
                await client.SendAsync("ECHO still served\n");
                Assert.Equal("ECHO still served", await client.ReadLineAsync());
            }

            // One leaves: the next newcomer is served.
            await clients[0].SendAsync("QUIT\n");
            Assert.Equal(["BYE"], await clients[0].ReadLinesToEndAsync());
            await WaitUntilAsync(() => server.Tracker.Active == 9);
            clients.Add(await RawConnection.OpenAsync(server.EndPoint));
        }
        finally
        {
            foreach (RawConnection client in clients)
            {
                await client.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task A_peer_that_trickles_bytes_without_a_newline_is_cut_off_by_the_idle_timeout()
    {
        await using TestServer server = await StartAsync(new ServerOptions { IdleTimeoutSeconds = 2 });
        await using RawConnection trickler = await RawConnection.OpenAsync(server.EndPoint);
        var started = System.Diagnostics.Stopwatch.StartNew();
        Task<List<string>> lines = trickler.ReadLinesToEndAsync();
        for (int i = 0; i < 12 && !lines.IsCompleted; i++)
        {
            try
            {
                await trickler.SendAsync("E");
            }
            catch (SocketException)
            {
                break; // Already closed.
            }

            await Task.Delay(250);
        }

        Assert.Equal(["ERROR IDLE_TIMEOUT"], await lines);
        Assert.InRange(started.Elapsed.TotalSeconds, 1.9, 4.5); // Two seconds, on a one-second heartbeat.
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        using var deadline = new CancellationTokenSource(Timeouts.Read);
        while (!condition())
        {
            await Task.Delay(20, deadline.Token);
        }
    }
}

/// <summary>The same tests on Kestrel's socket transport (<c>--transport sockets</c>).</summary>
[Trait("Tier", "process")]
public sealed class LimitTestsOnKestrelSockets : LimitTests
{
    protected override TransportKind Transport => TransportKind.Sockets;
}
