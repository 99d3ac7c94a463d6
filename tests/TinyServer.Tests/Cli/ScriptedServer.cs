using System.Net;
using System.Net.Sockets;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Cli;

/// <summary>
/// A stand-in server on 127.0.0.1 and a free port that misbehaves on purpose: it accepts one connection, stops
/// listening (any later connection is refused), and runs <c>script</c> on it (e.g. never send the banner, or close
/// after the first command).
/// </summary>
public sealed class ScriptedServer : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly Task _session;

    public ScriptedServer(Func<Socket, Task> script)
    {
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _session = RunAsync(script);
    }

    public int Port { get; }

    /// <summary>Completes when the script has finished with the connection.</summary>
    public Task Session => _session;

    private async Task RunAsync(Func<Socket, Task> script)
    {
        using Socket socket = await _listener.AcceptSocketAsync().WaitAsync(Timeouts.Process);
        _listener.Stop();
        await script(socket);
    }

    /// <summary>Reads until the first LF (or the end of the stream) and returns what came.</summary>
    public static async Task<string> ReadLineAsync(Socket socket)
    {
        var received = new List<byte>();
        var buffer = new byte[256];
        while (!received.Contains((byte)'\n'))
        {
            int n = await socket.ReceiveAsync(buffer, SocketFlags.None).WaitAsync(Timeouts.Read);
            if (n == 0)
            {
                break;
            }

            received.AddRange(buffer.AsSpan(0, n));
        }

        return System.Text.Encoding.UTF8.GetString([.. received]);
    }

    public async ValueTask DisposeAsync()
    {
        _listener.Stop();
        try
        {
            await _session.WaitAsync(Timeouts.Read);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or TimeoutException)
        {
            // The client may have gone already; the test has made its assertions.
        }
    }
}
