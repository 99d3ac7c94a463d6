using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using Microsoft.Extensions.Time.Testing;
using TinyServer.Server;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Endpoints;

/// <summary>
/// The TLS handshake timeout on the server's clock, a <see cref="FakeTimeProvider"/> the test advances, on both
/// transports: to the millisecond and without waiting (<see cref="TlsGateTests"/> checks it in real time).
/// </summary>
[Trait("Tier", "unit")]
public sealed class TlsHandshakeClockTests
{
    // Longer than Timeouts.Read: only the fake clock can end a handshake within the test. Kestrel's own handshake
    // timer (real time) starts at the first byte.
    private const int TimeoutSeconds = 60;

    [Theory]
    [InlineData(TransportKind.Epoll)]
    [InlineData(TransportKind.Sockets)]
    public async Task A_handshake_just_inside_the_timeout_completes_and_a_silent_client_is_closed_at_it(TransportKind transport)
    {
        var time = new TimerCountingTime();
        await using TestServer server = await TestServer.StartAsync(
            new ServerOptions { TlsPort = 0, TlsCertificate = TestCertificate.Instance.Certificate, TlsHandshakeTimeoutSeconds = TimeoutSeconds, Transport = transport },
            time);
        using var meter = new MeterReader(server.Metrics.Meter);
        using var late = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await late.ConnectAsync(server.TlsEndPoint!).WaitAsync(Timeouts.Read);
        await WaitForAsync(() => time.Timers >= 1); // The late client's handshake clock runs.
        await using RawConnection silent = await RawConnection.ConnectAsync(server.TlsEndPoint!);
        await WaitForAsync(() => time.Timers >= 2); // And the silent one's, from the same instant on the clock.
        Task<List<string>> silentEnd = silent.ReadLinesToEndAsync();

        time.Advance(TimeSpan.FromSeconds(TimeoutSeconds) - TimeSpan.FromMilliseconds(1));
        await using var tls = new SslStream(new NetworkStream(late, ownsSocket: false));
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            EnabledSslProtocols = SslProtocols.Tls13,
            RemoteCertificateValidationCallback = (_, _, _, _) => true,
        }).WaitAsync(Timeouts.Read);
        byte[] banner = new byte[64];
        Assert.True(await tls.ReadAsync(banner).AsTask().WaitAsync(Timeouts.Read) > 0);
        Assert.False(silentEnd.IsCompleted);
        Assert.Equal(0, meter.Collect()["tinyserver.connections.rejected{reason=tls_handshake}"]);

        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Empty(await silentEnd); // Closed without a byte.
        await WaitForAsync(() => meter.Collect()["tinyserver.connections.rejected{reason=tls_handshake}"] == 1);
        Assert.Equal(1, server.Tracker.Accepted); // Only the late client reached the protocol.
        Assert.Empty(server.Warnings);
    }

    private static async Task WaitForAsync(Func<bool> condition)
    {
        using var deadline = new CancellationTokenSource(Timeouts.Read);
        while (!condition())
        {
            await Task.Delay(5, deadline.Token);
        }
    }

    /// <summary>A fake clock that counts the timers made on it: the server makes one when a TLS connection's handshake clock starts.</summary>
    private sealed class TimerCountingTime : FakeTimeProvider
    {
        private int _timers;

        public int Timers => Volatile.Read(ref _timers);

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            Interlocked.Increment(ref _timers);
            return base.CreateTimer(callback, state, dueTime, period);
        }
    }
}
