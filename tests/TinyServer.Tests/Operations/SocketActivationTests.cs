using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Authentication;
using TinyServer.Server;
using TinyServer.Tests.Endpoints;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Operations;

/// <summary>
/// Socket activation (LISTEN_FDS): the server serves the listening sockets it is passed, plain, TLS (named "tls")
/// and Unix, instead of binding its own; a passed descriptor it cannot serve is one line and exit 1; and stopping
/// leaves the shared socket as it was: the connections queued on it and its options are the next instance's.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
[Trait("Tier", "process")]
public class SocketActivationTests
{
    private const string Banner = "WELCOME, I'm TinyServer not pressure";

    [Theory]
    [InlineData("epoll")]
    [InlineData("sockets")]
    public async Task Under_systemd_socket_activate_the_server_serves_the_plain_tls_and_unix_sockets_it_is_passed_and_binds_none_itself(string transport)
    {
        TestCertificate certificate = TestCertificate.Instance;
        string directory = Directory.CreateTempSubdirectory("tinyserver-activate-").FullName;
        try
        {
            int plain = FreePort(), tls = FreePort(), own = FreePort();
            string unix = Path.Combine(directory, "passed.sock"), ownUnix = Path.Combine(directory, "own.sock");
            await using ServerProcess server = ServerProcess.StartUnderSocketActivate(
                [$"127.0.0.1:{plain}", $"127.0.0.1:{tls}", unix],
                "tinyserver:tls:local",
                ["--transport", transport, "--port", Text(own), "--bind", "127.0.0.1", "--unix", ownUnix, "--tls-cert", certificate.CertificatePem, "--tls-key", certificate.KeyPem]);

            // systemd-socket-activate execs the server at the first connection, which waits in the backlog meanwhile.
            await using (RawConnection first = await ConnectWhenListeningAsync(new IPEndPoint(IPAddress.Loopback, plain)))
            {
                Assert.Equal(Banner, await first.ReadLineAsync());
                await first.SendAsync("ECHO plain\nQUIT\n");
                Assert.Equal(["ECHO plain", "BYE"], await first.ReadLinesToEndAsync());
            }

            await server.WaitForLineAsync("TinyServer ready");
            string[] listening = [.. server.Output.Where(l => l.Contains("Listening on ", StringComparison.Ordinal)).Select(l => l[(l.IndexOf("Listening on ", StringComparison.Ordinal) + 13)..])];
            Assert.Equal([$"127.0.0.1:{plain} (fd 3)", $"127.0.0.1:{tls} (TLS, fd 4)", $"unix:{unix} (fd 5)"], listening);

            await using (RawConnection secure = await RawConnection.ConnectTlsAsync(new IPEndPoint(IPAddress.Loopback, tls), SslProtocols.Tls13, certificate.Certificate))
            {
                Assert.Equal(Banner, await secure.ReadLineAsync());
                await secure.SendAsync("ECHO secure\nQUIT\n");
                Assert.Equal(["ECHO secure", "BYE"], await secure.ReadLinesToEndAsync());
            }

            await using (RawConnection local = await RawConnection.ConnectUnixAsync(unix))
            {
                Assert.Equal(Banner, await local.ReadLineAsync());
                await local.SendAsync("ECHO local\nQUIT\n");
                Assert.Equal(["ECHO local", "BYE"], await local.ReadLinesToEndAsync());
            }

            // --port and --unix were not bound.
            using (var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
            {
                SocketException refused = await Assert.ThrowsAsync<SocketException>(() => probe.ConnectAsync(new IPEndPoint(IPAddress.Loopback, own)).WaitAsync(Timeouts.Read));
                Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
            }

            Assert.False(File.Exists(ownUnix));
            Assert.Equal(0, await server.StopAsync());
            Assert.True(File.Exists(unix), "the passed Unix socket's file belongs to whoever bound it, and stays");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Theory]
    [InlineData("epoll")]
    [InlineData("sockets")]
    public async Task Connections_queued_on_a_passed_socket_outlive_the_instance_that_stops_and_the_socket_keeps_no_option_from_it(string transport)
    {
        // The test plays systemd: it binds the socket once and passes it to A, then B, then C.
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(64);
        var endPoint = (IPEndPoint)listener.LocalEndPoint!;
        string[] arguments = ["--transport", transport, "--port", "0", "--bind", "127.0.0.1"];
        var queued = new List<RawConnection>();
        try
        {
            await using (ServerProcess a = await ServerProcess.StartActivatedAsync([listener], ["tinyserver"], arguments))
            {
                Assert.Contains(a.Output, l => l.EndsWith($"Listening on {endPoint} (fd 3)", StringComparison.Ordinal));
                await AssertServedAsync(endPoint, "a");

                // A stops accepting: no descriptors to spare. Its accept already pending still takes one connection.
                a.LimitOpenFiles(a.OpenDescriptors() + 16);
                await using RawConnection taken = await RawConnection.OpenAsync(endPoint);
                for (int i = 0; i < 5; i++)
                {
                    queued.Add(await RawConnection.ConnectAsync(endPoint));
                }

                await WaitForAcceptQueueAsync(listener, 5);
                Assert.Equal(0, await a.StopAsync());
            }

            // Closing A's descriptor neither reset the queue nor stopped the socket listening.
            Assert.Equal(5, AcceptQueue(listener));
            await using (ServerProcess b = await ServerProcess.StartActivatedAsync([listener], ["tinyserver"], arguments))
            {
                for (int i = 0; i < queued.Count; i++)
                {
                    Assert.Equal(Banner, await queued[i].ReadLineAsync());
                    await queued[i].SendAsync($"ECHO queued {i}\nQUIT\n");
                    Assert.Equal([$"ECHO queued {i}", "BYE"], await queued[i].ReadLinesToEndAsync());
                }

                // B stops with its accept pending (the usual case): an owning .NET Socket then closes abortively.
                Assert.Equal(0, await b.StopAsync());
            }

            // An abortive close sets SO_LINGER {on, 0} on the socket; every connection accepted from it afterwards
            // inherits it, and is reset when closed with replies unacknowledged. Not here: the socket is as bound.
            Assert.False(listener.LingerState!.Enabled, "the passed socket got SO_LINGER from a stopping instance");
            using var late = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await late.ConnectAsync(endPoint).WaitAsync(Timeouts.Read);
            await using ServerProcess c = await ServerProcess.StartActivatedAsync([listener], ["tinyserver"], arguments);
            await late.SendAsync("ECHO late\nQUIT\n"u8.ToArray(), SocketFlags.None).WaitAsync(Timeouts.Read);
            Assert.Equal($"{Banner}\nECHO late\nBYE\n", await ReadToCleanEndAsync(late));
            Assert.Equal(0, await c.StopAsync());
        }
        finally
        {
            foreach (RawConnection connection in queued)
            {
                await connection.DisposeAsync();
            }
        }
    }

    [Theory]
    [InlineData("datagram", "is not a stream socket (SO_TYPE 2): pass ListenStream= sockets")]
    [InlineData("unlistening", "is a socket that is not listening (Accept=no sockets only)")]
    [InlineData("file", "is not a socket (Socket operation on non-socket)")]
    public async Task A_passed_descriptor_that_is_not_a_listening_stream_socket_is_one_line_and_exit_1(string kind, string problem)
    {
        string file = Path.GetTempFileName();
        try
        {
            using var datagram = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            using var unlistening = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            unlistening.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            using Microsoft.Win32.SafeHandles.SafeFileHandle opened = File.OpenHandle(file);
            System.Runtime.InteropServices.SafeHandle descriptor = kind switch
            {
                "datagram" => datagram.SafeHandle,
                "unlistening" => unlistening.SafeHandle,
                _ => opened,
            };

            await using ServerProcess server = await ServerProcess.LaunchActivatedAsync([descriptor], ["tinyserver"], ["--port", "0", "--bind", "127.0.0.1"]);
            Assert.Equal(1, await server.WaitForExitAsync());
            Assert.Equal($"tinyserver: error: cannot listen: socket activation: descriptor 3 {problem}\n", await server.StandardErrorAfterExitAsync());
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task A_socket_named_tls_without_a_certificate_is_a_bad_option_exit_2()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        await using ServerProcess server = await ServerProcess.LaunchActivatedAsync([listener.SafeHandle], ["tls"], ["--port", "0", "--bind", "127.0.0.1"]);
        Assert.Equal(2, await server.WaitForExitAsync());
        Assert.Equal(
            "tinyserver: error: socket activation: LISTEN_FDNAMES names a 'tls' socket: TLS needs --tls-cert, the certificate to serve TLS with\n",
            await server.StandardErrorAfterExitAsync());
    }

    private static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);

    private static async Task AssertServedAsync(IPEndPoint endPoint, string text)
    {
        await using RawConnection client = await RawConnection.OpenAsync(endPoint);
        await client.SendAsync($"ECHO {text}\nQUIT\n");
        Assert.Equal([$"ECHO {text}", "BYE"], await client.ReadLinesToEndAsync());
    }

    /// <summary>Connects once the address listens (systemd-socket-activate binds after it starts).</summary>
    private static async Task<RawConnection> ConnectWhenListeningAsync(IPEndPoint endPoint)
    {
        using var deadline = new CancellationTokenSource(Timeouts.Process);
        while (true)
        {
            try
            {
                return await RawConnection.ConnectAsync(endPoint);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused && !deadline.IsCancellationRequested)
            {
                await Task.Delay(50, CancellationToken.None);
            }
        }
    }

    /// <summary>Everything until the server's close, which must be an end of stream (FIN), not a reset.</summary>
    private static async Task<string> ReadToCleanEndAsync(Socket socket)
    {
        var received = new List<byte>();
        byte[] buffer = new byte[4096];
        int n;
        while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None).WaitAsync(Timeouts.Read)) > 0)
        {
            received.AddRange(buffer.AsSpan(0, n));
        }

        return System.Text.Encoding.ASCII.GetString([.. received]);
    }

    /// <summary>Connections waiting in a listening socket's accept queue (TCP_INFO's tcpi_unacked, for a listener).</summary>
    private static int AcceptQueue(Socket listener)
    {
        byte[] info = new byte[104];
        int length = listener.GetRawSocketOption(6 /* IPPROTO_TCP */, 11 /* TCP_INFO */, info);
        Assert.True(length >= 32, $"TCP_INFO: {length} bytes");
        return BitConverter.ToInt32(info, 24);
    }

    private static async Task WaitForAcceptQueueAsync(Socket listener, int count)
    {
        using var deadline = new CancellationTokenSource(Timeouts.Read);
        while (AcceptQueue(listener) != count)
        {
            Assert.False(deadline.IsCancellationRequested, $"accept queue: {AcceptQueue(listener)}, {count} expected");
            await Task.Delay(20, CancellationToken.None);
        }
    }

    private static int FreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }
}
