using System.Net.Sockets;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Hardening;

/// <summary>
/// SIGTERM while the listener has stopped accepting for want of descriptors (it waits and retries, see
/// AcceptBackoff): the retry loop must end when the listener is closed, or the server never finishes stopping.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
[Trait("Tier", "process")]
public class StopWhileOutOfDescriptorsTests
{
    [Theory]
    [InlineData("epoll")]
    [InlineData("sockets")]
    public async Task A_server_that_has_no_descriptor_to_spare_for_the_next_connection_still_stops_on_SIGTERM(string transport)
    {
        await using ServerProcess server = await ServerProcess.StartAsync(["--port", "0", "--bind", "127.0.0.1", "--transport", transport]);

        // No descriptor to spare: the accept already pending takes one more connection, then the listener waits.
        server.LimitOpenFiles(server.OpenDescriptors() + 16);
        await using RawConnection taken = await RawConnection.OpenAsync(server.EndPoint);
        using var waiting = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await waiting.ConnectAsync(server.EndPoint).WaitAsync(Timeouts.Read);

        Assert.Equal(0, await server.StopAsync());
        Assert.Contains(server.Output, l => l.Contains($"Cannot accept connections on {server.EndPoint}: no descriptors to spare", StringComparison.Ordinal));
        Assert.Contains(server.Output, l => l.Contains("Stopped after 1 connections", StringComparison.Ordinal));
    }
}
