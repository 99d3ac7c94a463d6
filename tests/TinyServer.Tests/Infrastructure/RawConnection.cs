using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace TinyServer.Tests.Infrastructure;

/// <summary>
/// A plain socket for tests, deliberately not built on the protocol library: it sends bytes and splits what it
/// receives at LF. Every read is bounded by <see cref="Timeouts.Read"/>.
/// </summary>
public sealed class RawConnection : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly SslStream? _tls;
    private readonly List<byte> _received = [];
    private readonly byte[] _buffer = new byte[64 * 1024];
    private bool _eof;

    private RawConnection(Socket socket, SslStream? tls = null)
    {
        _socket = socket;
        _tls = tls;
    }

    /// <summary>The TLS version agreed on, for a connection made by <see cref="ConnectTlsAsync"/>.</summary>
    public SslProtocols TlsProtocol => _tls?.SslProtocol ?? SslProtocols.None;

    /// <summary>Connects to a Unix domain socket.</summary>
    public static async Task<RawConnection> ConnectUnixAsync(string path)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(path)).WaitAsync(Timeouts.Read);
        return new RawConnection(socket);
    }

    /// <summary>Connects with TLS <paramref name="protocol"/> to a server that must present <paramref name="expected"/>.</summary>
    public static async Task<RawConnection> ConnectTlsAsync(IPEndPoint endPoint, SslProtocols protocol, X509Certificate2 expected)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(endPoint).WaitAsync(Timeouts.Read);
        var tls = new SslStream(new NetworkStream(socket, ownsSocket: false));
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            EnabledSslProtocols = protocol,
            RemoteCertificateValidationCallback = (_, certificate, _, _) => certificate is not null && certificate.GetCertHashString() == expected.GetCertHashString(),
        }).WaitAsync(Timeouts.Read);
        return new RawConnection(socket, tls);
    }

    public static async Task<RawConnection> ConnectAsync(IPEndPoint endPoint)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(endPoint).WaitAsync(Timeouts.Read);
        return new RawConnection(socket);
    }

    /// <summary>Connects and reads the banner, checking it.</summary>
    public static async Task<RawConnection> OpenAsync(IPEndPoint endPoint)
    {
        RawConnection connection = await ConnectAsync(endPoint);
        Assert.Equal("WELCOME, I'm TinyServer not pressure", await connection.ReadLineAsync());
        return connection;
    }

    public Task SendAsync(string text) => SendAsync(Encoding.UTF8.GetBytes(text));

    public async Task SendAsync(byte[] bytes)
    {
        int sent = 0;
        if (_tls is not null)
        {
            await _tls.WriteAsync(bytes).AsTask().WaitAsync(Timeouts.Read);
            return;
        }

        while (sent < bytes.Length)
        {
            sent += await _socket.SendAsync(bytes.AsMemory(sent), SocketFlags.None).AsTask().WaitAsync(Timeouts.Read);
        }
    }

    /// <summary>One byte per send, with the Nagle algorithm off: the server sees many tiny reads.</summary>
    public async Task SendByteByByteAsync(byte[] bytes)
    {
        for (int i = 0; i < bytes.Length; i++)
        {
            await _socket.SendAsync(bytes.AsMemory(i, 1), SocketFlags.None).AsTask().WaitAsync(Timeouts.Read);
        }
    }

    /// <summary>Bytes received by the kernel and not read yet, without waiting.</summary>
    public int Unread => _received.Count + _socket.Available;

    /// <summary>Half-closes: the server sees the end of the input, and can still reply.</summary>
    public void ShutdownSend() => _socket.Shutdown(SocketShutdown.Send);

    /// <summary>The next line without its LF, decoded as UTF-8; null at end of stream.</summary>
    public async Task<string?> ReadLineAsync() => await ReadLineBytesAsync() is { } line ? Encoding.UTF8.GetString(line) : null;

    public async Task<byte[]?> ReadLineBytesAsync()
    {
        while (true)
        {
            int lf = _received.IndexOf((byte)'\n');
            if (lf >= 0)
            {
                byte[] line = [.. _received.GetRange(0, lf)];
                _received.RemoveRange(0, lf + 1);
                return line;
            }

            if (_eof || !await ReceiveAsync())
            {
                return null;
            }
        }
    }

    /// <summary>Reads until the server closes, returning everything not yet read as lines.</summary>
    public async Task<List<string>> ReadLinesToEndAsync()
    {
        var lines = new List<string>();
        while (await ReadLineAsync() is { } line)
        {
            lines.Add(line);
        }

        Assert.Empty(_received); // Every byte the server sent ended in LF.
        return lines;
    }

    /// <summary>Reads exactly <paramref name="count"/> bytes (telnet replies are not lines).</summary>
    public async Task<byte[]> ReadBytesAsync(int count)
    {
        while (_received.Count < count)
        {
            Assert.True(await ReceiveAsync(), $"the server closed after {_received.Count} of {count} bytes");
        }

        byte[] bytes = [.. _received.GetRange(0, count)];
        _received.RemoveRange(0, count);
        return bytes;
    }

    /// <summary>True when the server has closed the connection (reads until end of stream or timeout).</summary>
    public async Task AssertClosedAsync()
    {
        while (await ReceiveAsync())
        {
        }

        Assert.True(_eof);
    }

    private async Task<bool> ReceiveAsync()
    {
        int n;
        try
        {
            n = _tls is not null
                ? await _tls.ReadAsync(_buffer).AsTask().WaitAsync(Timeouts.Read)
                : await _socket.ReceiveAsync(_buffer, SocketFlags.None).WaitAsync(Timeouts.Read);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
            n = 0;
        }
        catch (IOException e) when (_tls is not null && e.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionReset })
        {
            n = 0;
        }

        if (n == 0)
        {
            _eof = true;
            return false;
        }

        _received.AddRange(_buffer.AsSpan(0, n));
        return true;
    }

    public async ValueTask DisposeAsync()
    {
        if (_tls is not null)
        {
            await _tls.DisposeAsync();
        }

        _socket.Dispose();
    }
}
