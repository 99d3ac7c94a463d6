using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace TinyServer.LoadGen.Tests.Infrastructure;

/// <summary>
/// A stand-in server on 127.0.0.1 and a free port, to make the load generator meet replies the real server never
/// sends. Each connection gets <c>greeting</c> (unless null), then each request line (CR and LF removed) is
/// answered with <c>reply(line)</c>: an empty reply sends nothing, a null reply closes the connection.
/// </summary>
public sealed class FakeServer : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentBag<Task> _sessions = [];
    private readonly Func<int, string?> _greeting;
    private readonly Func<string, string?> _reply;
    private readonly Task _accepting;
    private int _accepted;

    /// <param name="greeting">What connection number n (from 0) is sent first; null sends nothing.</param>
    /// <param name="reply">The reply to a request line; "" sends nothing, null closes the connection.</param>
    public FakeServer(Func<int, string?> greeting, Func<string, string?> reply)
    {
        _greeting = greeting;
        _reply = reply;
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _accepting = AcceptAsync();
    }

    public const string Banner = "WELCOME, I'm TinyServer not pressure\n";

    public int Port { get; }

    /// <summary>A TinyServer look-alike: the banner, then <paramref name="reply"/>.</summary>
    public static FakeServer WithBanner(Func<string, string?> reply) => new(_ => Banner, reply);

    /// <summary>A Redis look-alike: no banner.</summary>
    public static FakeServer WithoutBanner(Func<string, string?> reply) => new(_ => null, reply);

    private async Task AcceptAsync()
    {
        try
        {
            while (true)
            {
                Socket socket = await _listener.AcceptSocketAsync(_stop.Token);
                _sessions.Add(ServeAsync(socket, _greeting(_accepted++)));
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // Stopped.
        }
    }

    private async Task ServeAsync(Socket socket, string? greeting)
    {
        using (socket)
        {
            try
            {
                if (greeting is not null)
                {
                    await socket.SendAsync(Encoding.UTF8.GetBytes(greeting), SocketFlags.None, _stop.Token);
                }

                var pending = new List<byte>();
                var buffer = new byte[4096];
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
                        string? reply = _reply(line);
                        if (reply is null)
                        {
                            await socket.SendAsync(Encoding.UTF8.GetBytes(replies.ToString()), SocketFlags.None, _stop.Token);
                            return;
                        }

                        replies.Append(reply);
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

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await Task.WhenAll([_accepting, .. _sessions]).WaitAsync(Timeouts.Io);
        _stop.Dispose();
    }
}
