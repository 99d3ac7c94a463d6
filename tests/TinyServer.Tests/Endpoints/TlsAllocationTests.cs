using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using TinyServer.Server;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Endpoints;

/// <summary>
/// After the handshake, a TLS session allocates nothing per request (issue 12): the in-process server, TLS 1.2 and
/// 1.3, on both transports, answers 5 windows of 10,000 requests from one client, and the bytes the whole process
/// allocated in each window, less the client thread's own (its synchronous SslStream allocates per request), are
/// counted. The collection runs alone, so no other test allocates meanwhile. A per-request allocation (24 bytes at
/// least) shows as 240,000 bytes in every window; the host's occasional ones (timers, the thread pool) as a few
/// hundred or thousand bytes in some: the quietest window must stay under a byte a request.
/// </summary>
[Collection(nameof(Alone))]
[Trait("Tier", "process")]
public sealed class TlsAllocationTests
{
    private const int Warmup = 3_000;
    private const int Requests = 10_000;
    private const int Windows = 5;

    [Theory]
    [InlineData(SslProtocols.Tls13, TransportKind.Epoll)]
    [InlineData(SslProtocols.Tls12, TransportKind.Epoll)]
    [InlineData(SslProtocols.Tls13, TransportKind.Sockets)]
    [InlineData(SslProtocols.Tls12, TransportKind.Sockets)]
    public async Task Ten_thousand_requests_over_an_established_tls_session_allocate_nothing(SslProtocols protocol, TransportKind transport)
    {
        await using TestServer server = await TestServer.StartAsync(new ServerOptions
        {
            Transport = transport,
            IoThreads = 1,
            TlsPort = 0,
            TlsCertificate = TestCertificate.Instance.Certificate,
        });
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, ReceiveTimeout = (int)Timeouts.Read.TotalMilliseconds };
        await socket.ConnectAsync(server.TlsEndPoint!).WaitAsync(Timeouts.Read);
        await using var tls = new SslStream(new NetworkStream(socket, ownsSocket: false));
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            EnabledSslProtocols = protocol,
            RemoteCertificateValidationCallback = static (_, certificate, _, _) =>
                certificate is not null && certificate.GetCertHashString() == TestCertificate.Instance.Certificate.GetCertHashString(),
        }).WaitAsync(Timeouts.Read);

        // What earlier tests of the collection left to finalize (their sessions' SafeHandles) is done before counting.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        byte[] banner = "WELCOME, I'm TinyServer not pressure\n"u8.ToArray();
        byte[] request = "ECHO hello\n"u8.ToArray();
        long[] allocated = await Task.Run(() =>
        {
            Receive(tls, new byte[banner.Length]);
            var reply = new byte[request.Length];
            var windows = new long[Windows];
            long before = 0;
            for (int i = 0; i < Warmup + (Requests * Windows); i++)
            {
                if (i >= Warmup && (i - Warmup) % Requests == 0)
                {
                    long now = ServerAllocated();
                    if (i > Warmup)
                    {
                        windows[((i - Warmup) / Requests) - 1] = now - before;
                    }

                    before = now;
                }

                tls.Write(request);
                Receive(tls, reply);
                Assert.Equal(request, reply);
            }

            windows[Windows - 1] = ServerAllocated() - before;
            return windows;
        }).WaitAsync(TimeSpan.FromSeconds(120));

        string figures = string.Join(", ", allocated);
        Assert.True(allocated.Min() < Requests, $"bytes allocated by the server in each window of {Requests} requests: {figures}");
        Assert.Empty(server.Warnings);
    }

    /// <summary>On the client's thread: what every other thread of the process has allocated so far.</summary>
    private static long ServerAllocated() => GC.GetTotalAllocatedBytes(precise: true) - GC.GetAllocatedBytesForCurrentThread();

    private static void Receive(SslStream tls, byte[] into)
    {
        for (int got = 0; got < into.Length;)
        {
            int n = tls.Read(into, got, into.Length - got);
            Assert.True(n > 0, "the server closed the session");
            got += n;
        }
    }
}
