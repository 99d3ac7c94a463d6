using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Text;
using TinyServer.Server;
using TinyServer.Tests.Endpoints;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Hardening;

/// <summary>
/// The idle timeout measures a peer that neither sends nor reads: a client still reading its replies keeps its
/// connection and gets every reply, even while the server cannot hand the kernel any more of them for seconds; a
/// client that does neither is cut after about the timeout.
/// </summary>
[Trait("Tier", "process")]
public partial class IdleTimeoutDeliveryTests
{
    /// <summary>More replies than the kernel buffers of both ends hold (about 4 MiB on loopback), so the server's flush waits.</summary>
    private const int Lines = 40_000;

    private static readonly string Payload = new('r', 200);

    /// <summary>The transport these tests run on; <see cref="IdleTimeoutDeliveryTestsOnKestrelSockets"/> runs them all again on Kestrel's.</summary>
    protected virtual TransportKind Transport => TransportKind.Epoll;

    /// <summary>
    /// The issue's scenario, scaled down. The server runs in its own process and the client's sending and reading run
    /// on threads of their own, so that a test machine busy with other tests cannot stall either side for a whole
    /// timeout (which would rightly look idle).
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_half_closed_client_that_reads_slowly_gets_every_reply_in_order_then_a_graceful_close(bool tls)
    {
        TestCertificate certificate = TestCertificate.Instance;
        await using ServerProcess server = await ServerProcess.StartAsync(
            ["--port", "0", "--bind", "127.0.0.1", "--idle-timeout", "2", "--transport", Transport == TransportKind.Sockets ? "sockets" : "epoll",
             .. tls ? (string[])["--tls-port", "0", "--tls-cert", certificate.CertificatePem, "--tls-key", certificate.KeyPem] : []]);
        IPEndPoint endPoint = tls ? await TlsEndPointAsync(server) : server.EndPoint;
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)
        {
            ReceiveTimeout = (int)Timeouts.Read.TotalMilliseconds,
            SendTimeout = (int)Timeouts.Read.TotalMilliseconds,
        };
        await socket.ConnectAsync(endPoint).WaitAsync(Timeouts.Read);
        await using Stream stream = tls ? await AuthenticateAsync(socket) : new NetworkStream(socket, ownsSocket: false);
        (byte[] requests, byte[] expected) = Pipelined();
        Task<bool> sending = OnThread(() => SendThenHalfClose(socket, stream, requests));

        // Three idle timeouts of slow reading (about 200 KB/s, 2,000 bytes at a time): the kernel's send buffer stays
        // full all along, so no flush of the server completes and no line is answered; then as fast as it can.
        // A timeout of 2 s, not the minimum of 1: the reader is seen on the one-second heartbeat, so with 1 s the send
        // queue must move in every single heartbeat interval, and a test machine busy with the parallel suite can
        // stall this client's reading thread for that long (it failed so about once in four full runs).
        Received received = await OnThread(() => Read(stream, slowFor: TimeSpan.FromSeconds(6), bytesPerSecond: 200_000, chunk: 2_000)).WaitAsync(Timeouts.Process);

        Assert.False(received.Reset, $"reset after {received.Bytes.Length} of {expected.Length} bytes, {received.Elapsed.TotalSeconds:0.0} s");
        int same = expected.AsSpan().CommonPrefixLength(received.Bytes);
        Assert.True(same == expected.Length && received.Bytes.Length == expected.Length, $"{received.Bytes.Length} bytes of {expected.Length}, the same up to byte {same}, {received.Elapsed.TotalSeconds:0.0} s");
        Assert.True(await sending.WaitAsync(Timeouts.Read));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_client_that_sends_a_burst_and_never_reads_is_cut_after_about_the_timeout(bool tls)
    {
        await using TestServer server = await TestServer.StartAsync(new ServerOptions
        {
            IdleTimeoutSeconds = 1,
            Transport = Transport,
            TlsPort = tls ? 0 : null,
            TlsCertificate = tls ? TestCertificate.Instance.Certificate : null,
        });
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(tls ? server.TlsEndPoint! : server.EndPoint).WaitAsync(Timeouts.Read);
        await using Stream stream = tls ? await AuthenticateAsync(socket) : new NetworkStream(socket, ownsSocket: false);
        var clock = Stopwatch.StartNew();
        Task sending = SendAsync(stream, Pipelined().Requests); // Never read: the server's replies fill the kernel's buffers.

        await server.WaitForAllClosedAsync(1);
        TimeSpan cut = clock.Elapsed;
        try
        {
            await sending.WaitAsync(Timeouts.Read);
        }
        catch (IOException)
        {
            // The kernel may have taken the whole burst before the cut, or not.
        }

        // One second of timeout on a one-second heartbeat, and a heartbeat more to see that the send queue stands still.
        Assert.InRange(cut.TotalSeconds, 0.9, 8);
        Assert.True(server.Warnings.IsEmpty, string.Join('\n', server.Warnings)); // A cut is routine: nothing logged above Information.
    }

    private static async Task<Stream> AuthenticateAsync(Socket socket)
    {
        var tls = new SslStream(new NetworkStream(socket, ownsSocket: false));
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            EnabledSslProtocols = SslProtocols.Tls13,
            RemoteCertificateValidationCallback = (_, certificate, _, _) => certificate?.GetCertHashString() == TestCertificate.Instance.Certificate.GetCertHashString(),
        }).WaitAsync(Timeouts.Read);
        return tls;
    }

    private static (byte[] Requests, byte[] Expected) Pipelined()
    {
        var requests = new StringBuilder(Lines * 214);
        for (int i = 0; i < Lines; i++)
        {
            requests.Append("ECHO ").Append(i.ToString("D6", System.Globalization.CultureInfo.InvariantCulture)).Append(' ').Append(Payload).Append('\n');
        }

        string text = requests.ToString();
        return (Encoding.ASCII.GetBytes(text), Encoding.ASCII.GetBytes("WELCOME, I'm TinyServer not pressure\n" + text));
    }

    private static async Task SendAsync(Stream stream, byte[] bytes)
    {
        for (int sent = 0; sent < bytes.Length; sent += 64 * 1024)
        {
            await stream.WriteAsync(bytes.AsMemory(sent, Math.Min(64 * 1024, bytes.Length - sent))).AsTask().WaitAsync(Timeouts.Read);
        }
    }

    /// <summary>Runs blocking socket calls (bounded by the socket's timeouts) on a thread of their own.</summary>
    private static Task<T> OnThread<T>(Func<T> work)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        new Thread(() =>
        {
            try
            {
                done.SetResult(work());
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
        }) { IsBackground = true }.Start();
        return done.Task;
    }

    private static async Task<IPEndPoint> TlsEndPointAsync(ServerProcess server)
    {
        string line = await server.WaitForLineAsync(" (TLS)");
        return new IPEndPoint(IPAddress.Loopback, int.Parse(TlsPort().Match(line).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>Sends, then ends the input (TLS: close_notify first) while the replies are still being read.</summary>
    private static bool SendThenHalfClose(Socket socket, Stream stream, byte[] bytes)
    {
        stream.Write(bytes);
        if (stream is SslStream tls)
        {
            tls.ShutdownAsync().Wait(Timeouts.Read);
        }

        socket.Shutdown(SocketShutdown.Send);
        return true;
    }

    /// <summary>Reads at about <paramref name="bytesPerSecond"/> for <paramref name="slowFor"/>, then at full speed, until the end or a reset.</summary>
    private static Received Read(Stream stream, TimeSpan slowFor, int bytesPerSecond, int chunk)
    {
        var received = new MemoryStream();
        byte[] buffer = new byte[64 * 1024];
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < Timeouts.Process)
        {
            int wanted = buffer.Length;
            if (clock.Elapsed < slowFor)
            {
                long allowed = (long)(clock.Elapsed.TotalSeconds * bytesPerSecond) - received.Length;
                if (allowed <= 0)
                {
                    Thread.Sleep(10);
                    continue;
                }

                wanted = (int)Math.Min(chunk, allowed);
            }

            int n;
            try
            {
                n = stream.Read(buffer, 0, wanted);
            }
            catch (IOException e) when (e.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionReset })
            {
                return new Received(received.ToArray(), Reset: true, clock.Elapsed);
            }

            if (n == 0)
            {
                return new Received(received.ToArray(), Reset: false, clock.Elapsed);
            }

            received.Write(buffer, 0, n);
        }

        throw new TimeoutException($"still reading after {Timeouts.Process}");
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"Listening on 127\.0\.0\.1:(\d+) \(TLS\)")]
    private static partial System.Text.RegularExpressions.Regex TlsPort();

    private sealed record Received(byte[] Bytes, bool Reset, TimeSpan Elapsed);
}

/// <summary>The same tests on Kestrel's socket transport (<c>--transport sockets</c>).</summary>
[Trait("Tier", "process")]
public sealed class IdleTimeoutDeliveryTestsOnKestrelSockets : IdleTimeoutDeliveryTests
{
    protected override TransportKind Transport => TransportKind.Sockets;
}
