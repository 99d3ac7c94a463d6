using System.Buffers;
using System.IO.Pipelines;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using TinyServer.Protocol;

namespace TinyServer.Server;

/// <summary>
/// The TLS endpoints' connection middleware, around Kestrel's <c>UseHttps</c> (only the TLS listeners have it):
/// <list type="bullet">
/// <item>Before the handshake it peeks at the first byte without consuming it. A TLS client's first record is a
/// handshake (content type 0x16); anything else is plain text (nc, telnet), answered <c>ERROR TLS_REQUIRED</c> in
/// clear text at once, then closed.</item>
/// <item>The handshake runs on the <see cref="HandshakeThreads"/>, at idle CPU priority, never on an event thread
/// (<see cref="OffTheLoop"/>): its cryptography would stall every connection of the loop. The session's reads and
/// writes after it run inline, as plain text's do; its close runs on the handshake threads too.</item>
/// <item>Until the handshake is complete, the handshake timeout (counted from the accept) and shutdown close the
/// connection at once: it holds no request, so nothing is lost, and shutdown does not wait for it.</item>
/// <item>After the handler, the close_notify alert. A TLS 1.2 client that asked to renegotiate (refused by
/// SslStream, which fails the read that received the request) leaves OpenSSL in mid-handshake, where no alert can
/// be sent: the connection is closed without it, and counted. A fatal TLS error (a corrupt record) does the same,
/// and is closed alike, but not counted as a renegotiation: the handler's failed read tells them apart.</item>
/// </list>
/// Each refusal is counted under a <c>tls_*</c> reason of <c>tinyserver.connections.rejected</c> and logged at Debug only.
/// </summary>
public sealed class TlsGate
{
    /// <summary>The content type of a TLS handshake record, which every TLS client sends first.</summary>
    private const byte HandshakeRecord = 0x16;

    /// <summary>How long a TLS connection's close waits for its close_notify alert to be written.</summary>
    private static readonly TimeSpan CloseNotifyTimeout = TimeSpan.FromSeconds(1);

    private readonly ServerOptions _options;
    private readonly ServerMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger<TlsGate> _logger;
    private readonly TimeSpan _handshakeTimeout;
    private readonly HandshakeThreads _threads;

    public TlsGate(ServerOptions options, ServerMetrics metrics, TimeProvider time, HandshakeThreads threads, ILogger<TlsGate> logger)
    {
        _options = options;
        _threads = threads;
        _metrics = metrics;
        _time = time;
        _logger = logger;
        _handshakeTimeout = TimeSpan.FromSeconds(options.TlsHandshakeTimeoutSeconds);
        metrics.ReportRejections(RejectionReasons.TlsRequired);
        metrics.ReportRejections(RejectionReasons.TlsHandshake);
        metrics.ReportRejections(RejectionReasons.TlsRenegotiation);
    }

    private enum FirstByte
    {
        Handshake,
        PlainText,
        Closed,
        Expired,
    }

    /// <summary>Makes <paramref name="listen"/> a TLS endpoint: the gate, Kestrel's TLS with <paramref name="certificate"/>, and the close. The handler comes after.</summary>
    public static void Use(ListenOptions listen, ServerOptions options, X509Certificate2 certificate)
    {
        TlsGate gate = listen.ApplicationServices.GetRequiredService<TlsGate>();
        listen.Use(next => connection => gate.OnConnectedAsync(connection, next));
        listen.UseHttps(new HttpsConnectionAdapterOptions
        {
            ServerCertificate = certificate,
            SslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            // Kestrel's own timer starts after the first byte: the gate's, from the accept, ends a slow handshake first.
            HandshakeTimeout = TimeSpan.FromSeconds(options.TlsHandshakeTimeoutSeconds),
            // Kestrel offers the HTTP protocols by ALPN; this is not HTTP, so offer none.
            OnAuthenticate = static (_, ssl) => ssl.ApplicationProtocols = null,
        });
        listen.Use(next => connection => gate.OnHandshakeCompleteAsync(connection, next));
    }

    /// <summary>In front of <c>UseHttps</c>, on the connection's own bytes.</summary>
    private async Task OnConnectedAsync(ConnectionContext connection, ConnectionDelegate next)
    {
        using var pending = new PendingHandshake(connection, _handshakeTimeout, _time);
        switch (await PeekAsync(connection.Transport.Input, pending.Token))
        {
            case FirstByte.PlainText:
                await RefuseAsync(connection, pending.Token);
                return;
            case FirstByte.Closed:
                NotCompleted(connection, "closed before a TLS handshake");
                return;
            case FirstByte.Expired:
                NotCompleted(connection, "no TLS handshake within the timeout");
                return;
        }

        connection.Features.Set(pending);
        pending.AbortOnEnd(connection);
        var handshake = new OffTheLoop(connection.Transport, _threads);
        connection.Transport = handshake;
        connection.Features.Set(handshake);

        // The handshake's cryptography (a signature, a key exchange: hundreds of µs) would run on the event thread,
        // which resumed this peek, stalling every connection of the loop: from here on it runs on the handshake threads.
        await _threads.Enter();
        await next(connection);
        if (!pending.Completed)
        {
            NotCompleted(connection, "the TLS handshake failed, timed out or was cut");
        }
    }

    /// <summary>After <c>UseHttps</c>: the handshake is complete.</summary>
    private async Task OnHandshakeCompleteAsync(ConnectionContext connection, ConnectionDelegate next)
    {
        connection.Features.Get<PendingHandshake>()?.Complete();
        connection.Features.Get<OffTheLoop>()?.HandshakeDone();
        var session = new TlsSession(connection.Features.Get<ISslStreamFeature>()!.SslStream);
        connection.Transport = session;
        try
        {
            await next(connection);

            // The close is TLS work too (the alert, then OpenSSL's session freed as Kestrel unwinds): off the event thread.
            await _threads.Enter();
            await CloseNotifyAsync(connection, session.ReadFailure);
        }
        finally
        {
            session.Complete();
        }
    }

    /// <summary>Waits for the first byte, consuming nothing: SslStream then reads the same bytes at once.</summary>
    private static async Task<FirstByte> PeekAsync(PipeReader input, CancellationToken end)
    {
        try
        {
            while (true)
            {
                ReadResult result = await input.ReadAsync(end);
                ReadOnlySequence<byte> buffer = result.Buffer;
                if (!buffer.IsEmpty)
                {
                    FirstByte first = First(buffer) == HandshakeRecord ? FirstByte.Handshake : FirstByte.PlainText;
                    input.AdvanceTo(buffer.Start); // Nothing consumed, nothing examined.
                    return first;
                }

                input.AdvanceTo(buffer.End);
                if (result.IsCompleted || result.IsCanceled)
                {
                    return FirstByte.Closed;
                }
            }
        }
        catch (OperationCanceledException) when (end.IsCancellationRequested)
        {
            return FirstByte.Expired;
        }
        catch (Exception e) when (e is IOException or ConnectionAbortedException or ConnectionResetException)
        {
            return FirstByte.Closed;
        }
    }

    private static byte First(in ReadOnlySequence<byte> buffer)
    {
        new SequenceReader<byte>(buffer).TryPeek(out byte first);
        return first;
    }

    /// <summary>Plain text on the TLS port: one error line in clear text, then a graceful close.</summary>
    private async Task RefuseAsync(ConnectionContext connection, CancellationToken end)
    {
        ReplyWriter.WriteError(connection.Transport.Output, ErrorCode.TlsRequired);
        _metrics.Rejected(RejectionReasons.TlsRequired);
        _metrics.ErrorSent(ErrorCode.TlsRequired);
        Closed(connection, "plain text on the TLS port");
        try
        {
            if (!(await connection.Transport.Output.FlushAsync()).IsCompleted)
            {
                await LingerAsync(connection.Transport.Input, end);
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ConnectionResetException)
        {
            // Gone already.
        }
    }

    /// <summary>
    /// As the handler does before a close: reads and discards what the client still sends (the rest of its line),
    /// until it closes, pauses for <see cref="LineConnectionHandler.QuietPeriod"/>, the linger timeout passes, or
    /// the handshake timeout or shutdown ends the wait. Closing with unread input would reset the connection and
    /// could drop the error line.
    /// </summary>
    private Task LingerAsync(PipeReader input, CancellationToken end) =>
        LineConnectionHandler.LingerAsync(input, TimeSpan.FromSeconds(_options.LingerTimeoutSeconds), _time, end);

    /// <summary>
    /// Ends a TLS connection the way TLS wants: with a close_notify alert after the last reply, which Kestrel leaves
    /// out. Without it a strict client (openssl s_client) cannot tell our close from a truncation attack.
    /// </summary>
    /// <param name="connection">The connection, its handler done.</param>
    /// <param name="readFailure">What ended the handler's reading, if a read failed.</param>
    private async Task CloseNotifyAsync(ConnectionContext connection, IOException? readFailure)
    {
        if (connection.ConnectionClosed.IsCancellationRequested || connection.Features.Get<ISslStreamFeature>()?.SslStream is not { } ssl)
        {
            return;
        }

        Task shutdown;
        try
        {
            shutdown = ssl.ShutdownAsync();
        }
        catch (CryptographicException)
        {
            // OpenSSL is back in a handshake state ("shutdown while in init"), where no alert can be sent: close
            // without one. A TLS 1.2 client's renegotiation request does that: SslStream refuses it by failing the
            // read with an IOException of its own (no inner exception). So does a fatal TLS error, such as a corrupt
            // record, whose IOException carries OpenSSL's error: closed too, but not a renegotiation.
            if (readFailure is { InnerException: null })
            {
                Rejected(connection, RejectionReasons.TlsRenegotiation, "renegotiation refused");
            }
            else
            {
                Closed(connection, "TLS error after the handshake");
            }

            return;
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException or NotSupportedException)
        {
            return; // The stream failed or was closed already: nothing more can be sent.
        }

        // A peer that does not read may leave no room for the alert: wait a little, never for long.
        try
        {
            await shutdown.WaitAsync(CloseNotifyTimeout, _time);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException or TimeoutException or OperationCanceledException)
        {
            _ = shutdown.ContinueWith(static t => t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
        }
    }

    /// <summary>No handshake completed: counted, unless shutdown ended it (not the client's doing).</summary>
    private void NotCompleted(ConnectionContext connection, string detail)
    {
        if (connection.Features.Get<IConnectionLifetimeNotificationFeature>()?.ConnectionClosedRequested.IsCancellationRequested == true)
        {
            Closed(connection, "shutting down before the TLS handshake completed");
        }
        else
        {
            Rejected(connection, RejectionReasons.TlsHandshake, detail);
        }
    }

    private void Rejected(ConnectionContext connection, string reason, string detail)
    {
        _metrics.Rejected(reason);
        Closed(connection, detail);
    }

    private void Closed(ConnectionContext connection, string detail)
    {
        if (_logger.IsEnabled(LogLevel.Debug))
        {
            Log.TlsClosed(_logger, connection.ConnectionId, connection.RemoteEndPoint, detail);
        }
    }

    /// <summary>
    /// The connection's own pipes as SslStream reads them. Until the handshake completes, a read that waits resumes on
    /// the handshake threads, not on the event thread that completes it, so that no part of the handshake runs on an
    /// event loop. After that, reads pass straight through: the session's records are decrypted inline, on the event thread.
    /// </summary>
    private sealed class OffTheLoop(IDuplexPipe transport, HandshakeThreads threads) : PipeReader, IDuplexPipe
    {
        private readonly PipeReader _input = transport.Input;
        private volatile bool _handshaking = true;

        public PipeReader Input => this;

        public PipeWriter Output { get; } = transport.Output;

        /// <summary>The handshake is done: reads resume where they complete from now on.</summary>
        public void HandshakeDone() => _handshaking = false;

        public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
        {
            ValueTask<ReadResult> read = _input.ReadAsync(cancellationToken);
            return _handshaking && !read.IsCompleted ? ResumeOffTheLoopAsync(read) : read;
        }

        public override bool TryRead(out ReadResult result) => _input.TryRead(out result);

        public override void AdvanceTo(SequencePosition consumed) => _input.AdvanceTo(consumed);

        public override void AdvanceTo(SequencePosition consumed, SequencePosition examined) => _input.AdvanceTo(consumed, examined);

        public override void CancelPendingRead() => _input.CancelPendingRead();

        public override void Complete(Exception? exception = null) => _input.Complete(exception);

        private async ValueTask<ReadResult> ResumeOffTheLoopAsync(ValueTask<ReadResult> read)
        {
            ReadResult result = await read.ConfigureAwait(false);
            await threads.Enter(); // The rest of the handshake, up to its next read that waits.
            return result;
        }
    }

    /// <summary>
    /// A connection's handshake until it completes: ends at the handshake timeout (from the accept) or when
    /// shutdown asks the connection to close. Kept in the connection's features for the middleware after UseHttps.
    /// </summary>
    private sealed class PendingHandshake : IDisposable
    {
        private readonly CancellationTokenSource _end;
        private readonly CancellationTokenRegistration _onShutdown;
        private CancellationTokenRegistration _abort;
        private volatile bool _completed;

        public PendingHandshake(ConnectionContext connection, TimeSpan timeout, TimeProvider time)
        {
            _end = new CancellationTokenSource(timeout, time);
            _onShutdown = connection.Features.Get<IConnectionLifetimeNotificationFeature>()?
                .ConnectionClosedRequested.Register(static state => ((CancellationTokenSource)state!).Cancel(), _end) ?? default;
        }

        /// <summary>Canceled at the handshake timeout or on shutdown.</summary>
        public CancellationToken Token => _end.Token;

        public bool Completed => _completed;

        /// <summary>From now until <see cref="Complete"/>, the end aborts the connection: Kestrel's handshake takes no token of ours.</summary>
        public void AbortOnEnd(ConnectionContext connection) =>
            _abort = _end.Token.Register(static state => ((ConnectionContext)state!).Abort(new ConnectionAbortedException("No TLS handshake in time, or shutting down.")), connection);

        /// <summary>The handshake is done: from now on the timeout and shutdown are the handler's (which drains).</summary>
        public void Complete()
        {
            _completed = true;
            Dispose();
        }

        public void Dispose()
        {
            _abort.Dispose(); // Waits for an abort under way; none comes after.
            _onShutdown.Dispose();
            _end.Dispose();
        }
    }
}
