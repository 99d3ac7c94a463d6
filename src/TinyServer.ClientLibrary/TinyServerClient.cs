using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using TinyServer.Protocol;

namespace TinyServer.ClientLibrary;

/// <summary>The server closed the connection before the expected reply arrived.</summary>
public sealed class ServerClosedException(string message) : IOException(message);

/// <summary>The server sent something that is not a reply line (e.g. a line over the reply limit).</summary>
public sealed class ProtocolException(string message) : IOException(message);

/// <summary>The TLS handshake failed: the certificate was not trusted, or the peer does not speak TLS.</summary>
public sealed class TlsHandshakeException(string message, Exception inner) : IOException(message, inner);

/// <summary>
/// The connection (and any TLS handshake) was made, but the banner had not come when the connect was cancelled: the
/// peer may wait for the client to speak first (a TLS port reached without TLS). Still an <see cref="OperationCanceledException"/>.
/// </summary>
public sealed class BannerTimeoutException(CancellationToken token) : OperationCanceledException("connected, but no banner came", token);

/// <summary>How to talk TLS to the server.</summary>
public sealed record TlsClientOptions
{
    /// <summary>
    /// Accept any certificate, unchecked (a self-signed test server). The connection is then encrypted but not
    /// authenticated: anyone in the path can read and change it.
    /// </summary>
    public bool AcceptAnyCertificate { get; init; }

    /// <summary>The TLS versions to offer; the default lets the system choose (TLS 1.2 and 1.3 on current systems).</summary>
    public SslProtocols Protocols { get; init; } = SslProtocols.None;
}

/// <summary>
/// One connection to a TinyServer. Replies come back one line per request, in order, so requests may be
/// pipelined: send several, then read as many replies. One <see cref="ReadReplyAsync"/> may run while one
/// <see cref="SendAsync(string, CancellationToken)"/> does (a reader loop beside a writer loop, so that a read is
/// always waiting and a line the server sends unasked is seen at once); otherwise not safe for concurrent use.
/// </summary>
public sealed class TinyServerClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly Stream _stream;
    private readonly PipeReader _input;
    private readonly LineDecoder _decoder;
    private readonly ArrayBufferWriter<byte> _output = new();

    private TinyServerClient(Socket socket, Stream stream, int maxReplyLength)
    {
        _socket = socket;
        _stream = stream;
        _input = PipeReader.Create(_stream);
        _decoder = new LineDecoder(maxReplyLength);
    }

    /// <summary>The greeting the server sent on connect.</summary>
    public string Banner { get; private set; } = "";

    public EndPoint? RemoteEndPoint => _socket.RemoteEndPoint;

    /// <summary>The TLS version in use; <see cref="SslProtocols.None"/> without TLS.</summary>
    public SslProtocols TlsProtocol => (_stream as SslStream)?.SslProtocol ?? SslProtocols.None;

    /// <summary>Connects (trying every address of <paramref name="host"/>) and reads the banner.</summary>
    /// <exception cref="SocketException">Nobody listens there, or the host does not resolve.</exception>
    public static Task<TinyServerClient> ConnectAsync(string host, int port, CancellationToken cancellationToken = default, int maxReplyLength = ReplyReader.DefaultMaxReplyLength) =>
        ConnectAsync(host, port, tls: null, cancellationToken, maxReplyLength);

    /// <summary>
    /// Connects, over TLS when <paramref name="tls"/> is given (the certificate must be valid for <paramref name="host"/>
    /// unless <see cref="TlsClientOptions.AcceptAnyCertificate"/>), and reads the banner.
    /// </summary>
    /// <exception cref="SocketException">Nobody listens there, or the host does not resolve.</exception>
    /// <exception cref="TlsHandshakeException">The TLS handshake failed.</exception>
    /// <exception cref="BannerTimeoutException">Connected, but cancelled before the banner came.</exception>
    public static async Task<TinyServerClient> ConnectAsync(string host, int port, TlsClientOptions? tls, CancellationToken cancellationToken = default, int maxReplyLength = ReplyReader.DefaultMaxReplyLength)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(host, port, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var network = new NetworkStream(socket, ownsSocket: true);
        if (tls is null)
        {
            return await GreetAsync(new TinyServerClient(socket, network, maxReplyLength), cancellationToken).ConfigureAwait(false);
        }

        var secure = new SslStream(network, leaveInnerStreamOpen: false);
        SslPolicyErrors rejected = SslPolicyErrors.None;
        try
        {
            await secure.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = host,
                EnabledSslProtocols = tls.Protocols,
                RemoteCertificateValidationCallback = (_, _, _, errors) =>
                {
                    rejected = tls.AcceptAnyCertificate ? SslPolicyErrors.None : errors;
                    return rejected == SslPolicyErrors.None;
                },
            }, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is AuthenticationException or IOException)
        {
            await secure.DisposeAsync().ConfigureAwait(false);
            string why = rejected != SslPolicyErrors.None
                ? $"the server's certificate is not trusted for '{host}' ({rejected}): {e.Message}"
                : e.Message;
            throw new TlsHandshakeException($"TLS handshake failed: {why}", e);
        }
        catch
        {
            await secure.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return await GreetAsync(new TinyServerClient(socket, secure, maxReplyLength), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Connects to a server's Unix domain socket at <paramref name="path"/> and reads the banner.</summary>
    /// <exception cref="SocketException">Nobody listens there, or there is no such socket.</exception>
    public static async Task<TinyServerClient> ConnectUnixAsync(string path, CancellationToken cancellationToken = default, int maxReplyLength = ReplyReader.DefaultMaxReplyLength)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        return await GreetAsync(new TinyServerClient(socket, new NetworkStream(socket, ownsSocket: true), maxReplyLength), cancellationToken).ConfigureAwait(false);
    }

    private static async Task<TinyServerClient> GreetAsync(TinyServerClient client, CancellationToken cancellationToken)
    {
        try
        {
            string banner = await client.ReadReplyAsync(cancellationToken).ConfigureAwait(false)
                ?? throw new ServerClosedException("the server closed the connection before its banner");
            client.Banner = ReplyReader.IsBanner(banner)
                ? banner
                : throw new ProtocolException($"not a TinyServer: it greeted with '{Shorten(banner)}'");
            return client;
        }
        catch (SocketException e)
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw new ServerClosedException($"the connection was lost before the banner: {e.Message}");
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw new BannerTimeoutException(cancellationToken);
        }
        catch
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Sends one command line (without its line ending).</summary>
    public Task SendAsync(string command, CancellationToken cancellationToken = default) => SendAsync([command], cancellationToken);

    /// <summary>Sends several command lines in one write.</summary>
    public async Task SendAsync(IEnumerable<string> commands, CancellationToken cancellationToken = default)
    {
        _output.ResetWrittenCount();
        foreach (string command in commands)
        {
            RequestWriter.Write(_output, command);
        }

        await _stream.WriteAsync(_output.WrittenMemory, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Reads the next line the server sent; null when the server has closed the connection. That is the next reply,
    /// or a notice the server sends unasked just before it closes (<see cref="ReplyReader.IsClosingNotice"/>:
    /// <c>ERROR IDLE_TIMEOUT</c>, <c>ERROR SHUTTING_DOWN</c>), which answers no request.
    /// </summary>
    /// <exception cref="ServerClosedException">The server closed the connection in the middle of a reply line.</exception>
    /// <exception cref="ProtocolException">The reply line is longer than the limit.</exception>
    public async Task<string?> ReadReplyAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            ReadResult result = await _input.ReadAsync(cancellationToken).ConfigureAwait(false);
            ReadOnlySequence<byte> buffer = result.Buffer;
            LineStatus status = TryDecode(buffer, out SequencePosition consumed, out string? reply);
            if (status == LineStatus.Line)
            {
                _input.AdvanceTo(consumed);
                return reply;
            }

            _input.AdvanceTo(consumed, buffer.End);
            if (status == LineStatus.LineTooLong)
            {
                throw new ProtocolException($"the server sent a line longer than {_decoder.MaxLineLength} bytes");
            }

            if (result.IsCompleted)
            {
                // Every reply ends in LF: bytes without one are a reply cut short.
                return buffer.Slice(consumed).IsEmpty && _decoder.HeldBytes == 0
                    ? null
                    : throw new ServerClosedException("the server closed the connection in the middle of a reply");
            }
        }
    }

    /// <summary>Sends a command and reads its reply.</summary>
    /// <exception cref="ServerClosedException">The connection closed before the reply.</exception>
    public async Task<string> RequestAsync(string command, CancellationToken cancellationToken = default)
    {
        await SendAsync(command, cancellationToken).ConfigureAwait(false);
        return await ReadReplyAsync(cancellationToken).ConfigureAwait(false)
            ?? throw new ServerClosedException($"the server closed the connection before replying to '{command}'");
    }

    /// <summary>Sends every command in one write, then reads one reply per command.</summary>
    public async Task<IReadOnlyList<string>> PipelineAsync(IReadOnlyList<string> commands, CancellationToken cancellationToken = default)
    {
        await SendAsync(commands, cancellationToken).ConfigureAwait(false);
        var replies = new List<string>(commands.Count);
        foreach (string command in commands)
        {
            replies.Add(await ReadReplyAsync(cancellationToken).ConfigureAwait(false)
                ?? throw new ServerClosedException($"the server closed the connection before replying to '{command}'"));
        }

        return replies;
    }

    private static string Shorten(string text) => text.Length <= 80 ? text : text[..80] + "...";

    private LineStatus TryDecode(ReadOnlySequence<byte> buffer, out SequencePosition consumed, out string? reply)
    {
        var reader = new SequenceReader<byte>(buffer);
        LineStatus status = _decoder.TryReadLine(ref reader, isFinalBlock: false, null, out ReadOnlySpan<byte> line);
        reply = status == LineStatus.Line ? ReplyReader.Decode(line) : null;
        consumed = reader.Position;
        return status;
    }

    public async ValueTask DisposeAsync()
    {
        await _input.CompleteAsync().ConfigureAwait(false);
        await _stream.DisposeAsync().ConfigureAwait(false);
        _decoder.Dispose();
    }
}
