using System.Net;
using Microsoft.Extensions.Time.Testing;
using TinyServer.Server;
using TinyServer.Tests.Infrastructure;
using static TinyServer.Tests.Protocol.ProxyHeaderTests;

namespace TinyServer.Tests.Server;

/// <summary>
/// The PROXY protocol middleware on a real server over real sockets: nothing is sent before a complete valid header;
/// untrusted peers, malformed, missing, cut or late headers are closed without a byte and counted by reason; the
/// limits count the original client's address; a connection waiting for its header holds no connection slot.
/// </summary>
[Trait("Tier", "process")]
public class ProxyProtocolTests
{
    private const string Banner = "WELCOME, I'm TinyServer not pressure";

    private static ServerOptions Proxied(string trusted = "127.0.0.1", int headerTimeout = 5) => new()
    {
        ProxyProtocol = true,
        TrustedProxies = [IPNetwork.Parse(trusted.Contains('/', StringComparison.Ordinal) ? trusted : trusted + "/32")],
        ProxyHeaderTimeoutSeconds = headerTimeout,
    };

    private static string V1(string client, int port = 5555) => $"PROXY TCP4 {client} 127.0.0.1 {port} 40000\r\n";

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_header_then_requests_in_the_same_write_are_served(bool version2)
    {
        await using TestServer server = await TestServer.StartAsync(Proxied());
        await using RawConnection client = await RawConnection.ConnectAsync(server.EndPoint);
        byte[] header = version2 ? V2(0x21, 0x11, Ipv4Block("203.0.113.9", 5555, "127.0.0.1", 40000)) : B(V1("203.0.113.9"));
        await client.SendAsync([.. header, .. B("ECHO one\r\nECHO two\nQUIT\n")]);

        Assert.Equal([Banner, "ECHO one", "ECHO two", "BYE"], await client.ReadLinesToEndAsync());
        Assert.Equal(1, server.Tracker.ProxyAccepted);
    }

    [Fact]
    public async Task Nothing_is_sent_before_the_header_is_complete()
    {
        await using TestServer server = await TestServer.StartAsync(Proxied());
        await using RawConnection client = await RawConnection.ConnectAsync(server.EndPoint);
        byte[] header = B(V1("203.0.113.9"));
        await client.SendByteByByteAsync(header[..^1]);
        await Task.Delay(300);
        Assert.Equal(0, client.Unread);

        await client.SendAsync([.. header[^1..], .. B("ECHO hi\n")]);
        Assert.Equal(Banner, await client.ReadLineAsync());
        Assert.Equal("ECHO hi", await client.ReadLineAsync());
    }

    [Theory]
    [InlineData("ECHO hi\r\n")] // no header at all: never guessed
    [InlineData("PROXY TCP4 203.0.113.9 127.0.0.1 05555 40000\r\nECHO hi\r\n")]
    [InlineData("PROXY TCP4 203.0.113.9  127.0.0.1 5555 40000\r\nECHO hi\r\n")]
    [InlineData("\r\n\r\n\0\r\nQUIT\n\u0031\u0011\0\0")] // a version 2 signature with version 3
    public async Task A_malformed_or_missing_header_closes_without_a_byte(string input)
    {
        await using TestServer server = await TestServer.StartAsync(Proxied());
        await using RawConnection client = await RawConnection.ConnectAsync(server.EndPoint);
        await client.SendAsync(B(input));

        Assert.Empty(await client.ReadLinesToEndAsync());
        await WaitForAsync(() => server.Tracker.ProxyRejected(ProxyRejection.InvalidHeader) == 1);
        Assert.Equal(0, server.Tracker.Accepted);
    }

    [Fact]
    public async Task A_header_cut_by_the_peer_closes_without_a_byte()
    {
        await using TestServer server = await TestServer.StartAsync(Proxied());
        await using RawConnection client = await RawConnection.ConnectAsync(server.EndPoint);
        await client.SendAsync(B(V1("203.0.113.9")[..20]));
        client.ShutdownSend();

        Assert.Empty(await client.ReadLinesToEndAsync());
        await WaitForAsync(() => server.Tracker.ProxyRejected(ProxyRejection.ClosedEarly) == 1);
    }

    [Fact]
    public async Task A_peer_that_is_not_a_trusted_proxy_is_closed_without_a_byte()
    {
        await using TestServer server = await TestServer.StartAsync(Proxied(trusted: "127.0.0.2"));
        await using RawConnection client = await RawConnection.ConnectAsync(server.EndPoint);
        await client.SendAsync(B(V1("203.0.113.9") + "ECHO hi\r\n"));

        Assert.Empty(await client.ReadLinesToEndAsync());
        await WaitForAsync(() => server.Tracker.ProxyRejected(ProxyRejection.UntrustedPeer) == 1);
    }

    [Fact]
    public async Task A_trusted_network_admits_every_address_in_it()
    {
        await using TestServer server = await TestServer.StartAsync(Proxied(trusted: "127.0.0.0/8"));
        await using RawConnection client = await RawConnection.ConnectAsync(server.EndPoint);
        await client.SendAsync(B(V1("203.0.113.9") + "QUIT\r\n"));

        Assert.Equal([Banner, "BYE"], await client.ReadLinesToEndAsync());
    }

    [Fact]
    public async Task A_header_just_inside_the_timeout_is_accepted_and_none_is_closed_at_the_timeout()
    {
        const int TimeoutSeconds = 60; // The most the option allows, longer than Timeouts.Read: only the fake clock ends it in time.
        var time = new FakeTimeProvider();
        await using TestServer server = await TestServer.StartAsync(Proxied(headerTimeout: TimeoutSeconds), time);
        await using RawConnection silent = await RawConnection.ConnectAsync(server.EndPoint);
        await using RawConnection late = await RawConnection.ConnectAsync(server.EndPoint);
        await WaitForAsync(() => server.Tracker.AwaitingHeader == 2); // Both header clocks run.
        Task<List<string>> silentEnd = silent.ReadLinesToEndAsync();

        time.Advance(TimeSpan.FromSeconds(TimeoutSeconds) - TimeSpan.FromMilliseconds(1));
        await late.SendAsync(B(V1("203.0.113.9")));
        Assert.Equal(Banner, await late.ReadLineAsync());
        Assert.False(silentEnd.IsCompleted);
        Assert.Equal(0, server.Tracker.ProxyRejected(ProxyRejection.Timeout));

        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Empty(await silentEnd);
        await WaitForAsync(() => server.Tracker.ProxyRejected(ProxyRejection.Timeout) == 1);
    }

    [Fact]
    public async Task A_connection_waiting_for_its_header_holds_no_connection_slot()
    {
        await using TestServer server = await TestServer.StartAsync(Proxied() with { MaxConnections = 1 });
        await using RawConnection waiting = await RawConnection.ConnectAsync(server.EndPoint);
        await WaitForAsync(() => server.Tracker.AwaitingHeader == 1);
        Assert.Equal(0, server.Tracker.Active);

        await using RawConnection served = await RawConnection.ConnectAsync(server.EndPoint);
        await served.SendAsync(B(V1("203.0.113.9") + "ECHO hi\n"));
        Assert.Equal(Banner, await served.ReadLineAsync());
        Assert.Equal("ECHO hi", await served.ReadLineAsync());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task The_per_address_limit_counts_original_client_addresses(int limit)
    {
        await using TestServer server = await TestServer.StartAsync(Proxied() with { MaxConnectionsPerAddress = limit });
        var open = new List<RawConnection>();
        try
        {
            // Up to the limit from one client (one below, then at it): served.
            for (int i = 0; i < limit; i++)
            {
                open.Add(await ProxiedAsync(server, "203.0.113.9", Banner));
            }

            // One above: turned away as at the global limit, while another client is still served.
            await using (RawConnection over = await ProxiedAsync(server, "203.0.113.9", "ERROR TOO_MANY_CONNECTIONS"))
            {
                await over.AssertClosedAsync();
            }

            open.Add(await ProxiedAsync(server, "203.0.113.10", Banner));
            Assert.Equal(1, server.Tracker.RejectedPerAddress);

            // One leaves: its client may connect again.
            await open[0].SendAsync("QUIT\n");
            Assert.Equal("BYE", await open[0].ReadLineAsync());
            await open[0].AssertClosedAsync();
            await WaitForAsync(() => server.Tracker.Active == open.Count - 1);
            open.Add(await ProxiedAsync(server, "203.0.113.9", Banner));
            Assert.Equal(2, server.Tracker.AddressesServed);
        }
        finally
        {
            foreach (RawConnection connection in open)
            {
                await connection.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task Without_the_PROXY_protocol_the_per_address_limit_counts_the_peer()
    {
        await using TestServer server = await TestServer.StartAsync(new ServerOptions { MaxConnectionsPerAddress = 1 });
        await using RawConnection first = await RawConnection.OpenAsync(server.EndPoint);
        await using RawConnection second = await RawConnection.ConnectAsync(server.EndPoint);

        Assert.Equal(["ERROR TOO_MANY_CONNECTIONS"], await second.ReadLinesToEndAsync());
    }

    [Fact]
    public async Task Logs_carry_the_original_address_and_a_LOCAL_header_keeps_the_proxy_address()
    {
        await using ServerProcess server = await ServerProcess.StartAsync(
            ["--port", "0", "--bind", "127.0.0.1", "--log-level", "Debug", "--proxy-protocol", "--trusted-proxy", "127.0.0.1"]);
        await using (RawConnection client = await RawConnection.ConnectAsync(server.EndPoint))
        {
            await client.SendAsync(B(V1("203.0.113.9", 5555) + "QUIT\n"));
            Assert.Equal([Banner, "BYE"], await client.ReadLinesToEndAsync());
        }

        await using (RawConnection check = await RawConnection.ConnectAsync(server.EndPoint))
        {
            await check.SendAsync([.. V2(0x20, 0x00, []), .. B("QUIT\n")]);
            Assert.Equal([Banner, "BYE"], await check.ReadLinesToEndAsync());
        }

        Assert.Equal(0, await server.StopAsync());
        Assert.Contains(server.Output, line => line.Contains("from 203.0.113.9:5555 opened", StringComparison.Ordinal));
        Assert.Contains(server.Output, line => line.Contains("PROXY v2 Local header from 127.0.0.1:", StringComparison.Ordinal));
        Assert.Contains(server.Output, line => line.Contains("PROXY protocol: 2 headers accepted", StringComparison.Ordinal));
    }

    private static async Task<RawConnection> ProxiedAsync(TestServer server, string client, string expected)
    {
        RawConnection connection = await RawConnection.ConnectAsync(server.EndPoint);
        await connection.SendAsync(B(V1(client)));
        Assert.Equal(expected, await connection.ReadLineAsync());
        return connection;
    }

    private static byte[] B(string text) => Protocol.ProtocolHarness.B(text);

    private static async Task WaitForAsync(Func<bool> condition)
    {
        using var deadline = new CancellationTokenSource(Timeouts.Read);
        while (!condition())
        {
            await Task.Delay(20, deadline.Token);
        }
    }
}
