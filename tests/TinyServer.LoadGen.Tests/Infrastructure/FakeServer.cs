using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace TinyServer.LoadGen.Tests.Infrastructure;

/// <summary>
/// A stand-in server on 127.0.0.1 and a free port, to make the load generator meet replies the real server never
/// sends. Each connection gets <c>greeting</c> (unless null), then each request line (CR and LF removed) is
/// answered with <c>reply(connection, line)</c>: an empty reply sends nothing, a null reply closes the connection
/// (after the replies to the lines before it), and a reply ending in <see cref="AndClose"/> is sent, then the
/// connection closes. A greeting ending in <see cref="AndClose"/> is sent, then the connection closes (a full
/// server: <c>AndClose</c> alone closes before any banner).
/// </summary>
public sealed class FakeServer : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentBag<Task> _sessions = [];
    private readonly Func<int, string?> _greeting;
    private readonly Func<int, string, string?> _reply;
    private readonly Task _accepting;
    private int _accepted;

    /// <param name="greeting">What connection number n (from 0) is sent first; null sends nothing.</param>
    /// <param name="reply">The reply to a request line; "" sends nothing, null closes the connection.</param>
    public FakeServer(Func<int, string?> greeting, Func<string, string?> reply)
        : this(greeting, (_, line) => reply(line))
    {
    }

    /// <param name="greeting">What connection number n (from 0) is sent first; null sends nothing.</param>
    /// <param name="reply">The reply to a request line on connection number n (from 0).</param>
    public FakeServer(Func<int, string?> greeting, Func<int, string, string?> reply)
    {
        _greeting = greeting;
        _reply = reply;
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _accepting = AcceptAsync();
    }

    public const string Banner = "WELCOME, I'm TinyServer not pressure\n";

    /// <summary>Ends a reply (or greeting) that is sent, then the connection closes.</summary>
    public const string AndClose = "\0";

    public int Port { get; }

    /// <summary>A TinyServer look-alike: the banner, then <paramref name="reply"/>.</summary>
    public static FakeServer WithBanner(Func<string, string?> reply) => new(_ => Banner, reply);

    /// <summary>A TinyServer look-alike whose replies depend on the connection (numbered from 0).</summary>
    public static FakeServer WithBanner(Func<int, string, string?> reply) => new(_ => Banner, reply);

    /// <summary>Stops listening: dials are refused from now on (connections already accepted go on).</summary>
    public void StopListening() => _listener.Stop();

    /// <summary>A Redis look-alike: no banner.</summary>
    public static FakeServer WithoutBanner(Func<string, string?> reply) => new(_ => null, reply);

    private async Task AcceptAsync()
    {
        try
        {
            while (true)
            {
                Socket socket = await _listener.AcceptSocketAsync(_stop.Token);
                int connection = _accepted++;
                _sessions.Add(ServeAsync(socket, connection, _greeting(connection)));
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException or InvalidOperationException)
        {
            // Stopped.
        }
    }

    private async Task ServeAsync(Socket socket, int connection, string? greeting)
    {
        using (socket)
        {
            try
            {
                var buffer = new byte[4096];
                if (greeting is not null)
                {
                    await socket.SendAsync(Encoding.UTF8.GetBytes(greeting.TrimEnd(AndClose[0])), SocketFlags.None, _stop.Token);
                    if (greeting.EndsWith(AndClose, StringComparison.Ordinal))
                    {
                        await LingerAsync(socket, buffer);
                        return;
                    }
                }

                var pending = new List<byte>();
                while (true)
                {
                    int n = await socket.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                    if (n == 0)
                    {
                        return;
                    }

                    pending.AddRange(buffer.AsSpan(0, n));
                    var replies = new StringBuilder();
                    int lf;
                    while ((lf = pending.IndexOf((byte)'\n')) >= 0)
                    {
                        string line = Encoding.UTF8.GetString([.. pending.Take(lf)]).TrimEnd('\r');
                        pending.RemoveRange(0, lf + 1);
                        string? reply = _reply(connection, line);
                        bool close = reply is null || reply.EndsWith(AndClose, StringComparison.Ordinal);
                        replies.Append(reply?.TrimEnd(AndClose[0]));
                        if (close)
                        {
                            await socket.SendAsync(Encoding.UTF8.GetBytes(replies.ToString()), SocketFlags.None, _stop.Token);
                            await LingerAsync(socket, buffer);
                            return;
                        }
                    }

                    await socket.SendAsync(Encoding.UTF8.GetBytes(replies.ToString()), SocketFlags.None, _stop.Token);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException)
            {
                // Stopped, or the load generator closed first.
            }
        }
    }

    // Closes as the real server does: the end of its sending side, then whatever the client still sends is read and
    // dropped until it closes (or a second passes), so that unread requests do not turn the close into a reset that
    // could discard the last replies.
    private async Task LingerAsync(Socket socket, byte[] buffer)
    {
        socket.Shutdown(SocketShutdown.Send);
        using var linger = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        linger.CancelAfter(TimeSpan.FromSeconds(1));
        try
        {
            while (await socket.ReceiveAsync(buffer, SocketFlags.None, linger.Token) > 0)
            {
            }
        }
        catch (OperationCanceledException) when (!_stop.IsCancellationRequested)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await Task.WhenAll([_accepting, .. _sessions]).WaitAsync(Timeouts.Io);
        _stop.Dispose();
    }
}
