using System.Net;
using System.Net.Sockets;
using System.Text;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Hardening;

/// <summary>Memory and descriptors under abuse, measured on the real server process.</summary>
[Collection(nameof(Alone))] // Heavy: thousands of connections, nothing else running.
[Trait("Tier", "load")]
public class ResourceTests
{
    [Fact]
    public async Task A_thousand_clients_that_send_without_reading_cost_the_server_less_than_256_MiB()
    {
        await using ServerProcess server = await ServerProcess.StartAsync(["--port", "0", "--bind", "127.0.0.1"]);
        long before = server.ResidentKiB();
        byte[] flood = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("TIME\n", 4000))); // Replies are 6x the requests.
        var sockets = new List<Socket>();
        try
        {
            for (int i = 0; i < 1000; i++)
            {
                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { Blocking = false };
                try
                {
                    socket.Connect(server.EndPoint);
                }
                catch (SocketException e) when (e.SocketErrorCode == SocketError.WouldBlock)
                {
                    // Non-blocking connect on loopback completes right away.
                }

                sockets.Add(socket);
            }

            // Each client sends until its socket is full (the server stopped reading it), within a time bound.
            var deadline = DateTime.UtcNow.AddSeconds(30);
            var full = new bool[sockets.Count];
            int fullCount = 0;
            while (fullCount < sockets.Count && DateTime.UtcNow < deadline)
            {
                for (int i = 0; i < sockets.Count; i++)
                {
                    if (full[i])
                    {
                        continue;
                    }

                    try
                    {
                        sockets[i].Send(flood);
                    }
                    catch (SocketException e) when (e.SocketErrorCode is SocketError.WouldBlock or SocketError.NotConnected)
                    {
                        full[i] = e.SocketErrorCode == SocketError.WouldBlock;
                        fullCount += full[i] ? 1 : 0;
                    }
                }
            }

            Assert.Equal(sockets.Count, fullCount);
            await Task.Delay(1000); // Let the server settle on what it holds.
            long during = server.ResidentKiB();
            Assert.True(during < 256 * 1024, $"server RSS {during / 1024} MiB with 1,000 non-reading clients (before: {before / 1024} MiB)");

            // And it still serves everybody else.
            await using RawConnection fresh = await RawConnection.OpenAsync(server.EndPoint);
            await fresh.SendAsync("ECHO alive\n");
            Assert.Equal("ECHO alive", await fresh.ReadLineAsync());
        }
        finally
        {
            foreach (Socket socket in sockets)
            {
                socket.Dispose();
            }
        }
    }

    [Fact]
    public async Task Out_of_descriptors_the_server_neither_crashes_nor_spins_and_serves_again_when_clients_leave()
    {
        // .NET keeps every loaded assembly open (about 140 descriptors before the first connection), so the runtime
        // cannot even start under `ulimit -n 64`. Instead: serve once, then lower the running server's limit to what
        // it has open, plus the reserve it keeps for the runtime, plus 16, like `prlimit --nofile`, and bring 100
        // clients: about 16 are served, the rest wait in the backlog.
        await using ServerProcess server = await ServerProcess.StartAsync(["--port", "0", "--bind", "127.0.0.1", "--log-level", "Debug"]);
        await using (RawConnection warmUp = await RawConnection.OpenAsync(server.EndPoint))
        {
            await warmUp.SendAsync("QUIT\n");
            Assert.Equal(["BYE"], await warmUp.ReadLinesToEndAsync());
        }

        server.LimitOpenFiles(server.OpenDescriptors() + TinyServer.Server.FileDescriptorLimit.Reserve + 16);
        var clients = new List<Socket>();
        try
        {
            for (int i = 0; i < 100; i++)
            {
                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
                await socket.ConnectAsync(server.EndPoint).WaitAsync(Timeouts.Read); // The backlog takes what the server cannot.
                clients.Add(socket);
            }

            await server.WaitForLineAsync("Cannot accept connections");
            TimeSpan cpuBefore = server.CpuTime();
            await Task.Delay(2000);
            TimeSpan cpu = server.CpuTime() - cpuBefore;
            Assert.True(cpu < TimeSpan.FromSeconds(0.5), $"the server used {cpu.TotalSeconds:0.00} s of CPU in 2 s while out of descriptors");
        }
        finally
        {
            foreach (Socket socket in clients)
            {
                socket.Dispose();
            }
        }

        // The clients left: descriptors come back, and a newcomer is served.
        await using RawConnection fresh = await RawConnection.ConnectAsync(server.EndPoint);
        string? banner = await fresh.ReadLineAsync();
        Assert.True(banner == "WELCOME, I'm TinyServer not pressure", $"banner: '{banner}'; server log:\n{string.Join('\n', server.Output.TakeLast(30))}");
        await fresh.SendAsync("ECHO back\n");
        Assert.Equal("ECHO back", await fresh.ReadLineAsync());
    }

    [Fact]
    public async Task Ten_thousand_idle_connections_are_held_while_a_fresh_one_is_answered()
    {
        const int Held = 10_000;
        await using ServerProcess server = await ServerProcess.StartAsync(["--port", "0", "--bind", "127.0.0.1", "--max-connections", "10001"]);
        long before = server.ResidentKiB();
        var held = new List<Socket>(Held);
        try
        {
            byte[] banner = new byte[64];
            for (int batch = 0; batch < Held / 100; batch++)
            {
                Socket[] sockets = [.. Enumerable.Range(0, 100).Select(_ => new Socket(SocketType.Stream, ProtocolType.Tcp))];
                held.AddRange(sockets);
                await Task.WhenAll(sockets.Select(async socket =>
                {
                    await socket.ConnectAsync(server.EndPoint).WaitAsync(Timeouts.Read);
                    Assert.True(await socket.ReceiveAsync(banner).WaitAsync(Timeouts.Read) > 0);
                }));
            }

            await using RawConnection fresh = await RawConnection.OpenAsync(server.EndPoint);
            await fresh.SendAsync("TIME\n");
            Assert.StartsWith("TIME ", await fresh.ReadLineAsync());
            long perConnection = (server.ResidentKiB() - before) * 1024 / Held;
            Assert.True(perConnection < 64 * 1024, $"{perConnection} bytes of RSS per idle connection");
        }
        finally
        {
            foreach (Socket socket in held)
            {
                socket.Dispose();
            }
        }
    }
}
