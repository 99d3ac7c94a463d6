using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using TinyServer.Protocol;

namespace TinyServer.Server;

/// <summary>
/// The TLS endpoints' connection middleware (only the TLS listeners have it), with OpenSSL's own sessions
/// (<see cref="TlsSession"/>) in place of Kestrel's <c>UseHttps</c> and SslStream, whose layers cost about twice
/// OpenSSL's own CPU time a request (benchmarks/README.md, "TLS"):
/// <list type="bullet">
/// <item>Before the handshake it peeks at the first byte without consuming it. A TLS client's first record is a
/// handshake (content type 0x16); anything else is plain text (nc, telnet), answered <c>ERROR TLS_REQUIRED</c> in
/// clear text at once, then closed.</item>
/// <item>The handshake runs on the <see cref="HandshakeThreads"/>, at idle CPU priority, never on an event thread:
/// its cryptography would stall every connection of the loop. The session's reads and writes after it run inline,
/// as plain text's do; its close runs on the handshake threads too.</item>
/// <item>Until the handshake is complete, the handshake timeout (counted from the accept) and shutdown close the
/// connection at once: it holds no request, so nothing is lost, and shutdown does not wait for it.</item>
/// <item>After the handler, the close_notify alert. A TLS 1.2 client that asks to renegotiate is refused: its
/// session ends without the alert, and is counted. A fatal TLS error (a corrupt record) ends it alike, uncounted.</item>
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
    private readonly TlsContext _context;

    public TlsGate(ServerOptions options, ServerMetrics metrics, TimeProvider time, HandshakeThreads threads, TlsContext context, ILogger<TlsGate> logger)
    {
        _context = context;
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

    /// <summary>Makes <paramref name="listen"/> a TLS endpoint: the gate, the handshake and the session, and the close. The handler comes after.</summary>
    public static void Use(ListenOptions listen)
    {
        TlsGate gate = listen.ApplicationServices.GetRequiredService<TlsGate>();
        listen.Use(next => connection => gate.OnConnectedAsync(connection, next));
    }

    /// <summary>On the connection's own bytes: the first byte, the handshake, then the handler over the session.</summary>
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

        pending.AbortOnEnd(connection);

        // The handshake's cryptography (a signature, a key exchange: hundreds of µs) would run on the event thread,
        // which resumed this peek, stalling every connection of the loop: from here on it runs on the handshake threads.
        await _threads.Enter();
        IDuplexPipe transport = connection.Transport;
        TlsSession session = TlsSession.Create(_context, transport);
        try
        {
            string? failure;
            try
            {
                failure = await session.HandshakeAsync(_threads, pending.Token);
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or ConnectionAbortedException or ConnectionResetException or InvalidOperationException)
            {
                failure = e.Message;
            }

            if (failure is not null)
            {
                NotCompleted(connection, pending.Token.IsCancellationRequested ? "no TLS handshake within the timeout" : failure);
                return;
            }

            pending.Complete();
            connection.Transport = session;
            await next(connection);

            // The close is TLS work too (the alert, then Kestrel's teardown of the connection): off the event thread.
            // Run inline on the event thread instead, it saved no measurable CPU a handshake (session 7) and took the
            // event thread's share of a handshake storm's CPU from about 25 % to 30-37 % on --transport sockets.
            await _threads.Enter();
            await CloseNotifyAsync(connection, session);
        }
        finally
        {
            connection.Transport = transport;
            session.Complete(); // OpenSSL's session is freed on every path, once nothing uses it.
        }
    }

    /// <summary>Waits for the first byte, consuming nothing: the handshake then reads the same bytes at once.</summary>
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
    /// Ends a TLS connection the way TLS wants: with a close_notify alert after the last reply. Without it a strict
    /// client (openssl s_client) cannot tell our close from a truncation attack. After a failed read (a refused
    /// renegotiation, a corrupt record) no alert can follow: the connection closes without one.
    /// </summary>
    private async Task CloseNotifyAsync(ConnectionContext connection, TlsSession session)
    {
        if (session.Renegotiation)
        {
            Rejected(connection, RejectionReasons.TlsRenegotiation, "renegotiation refused");
            return;
        }

        if (session.ReadFailure is not null)
        {
            Closed(connection, "TLS error after the handshake");
            return;
        }

        // Not skipped when ConnectionClosed has fired: Kestrel's socket transport fires it at the client's FIN, while
        // our side can still write (the alert after the replies to a half-closed client). An aborted connection's
        // flush ends at once.
        try
        {
            await session.CloseNotifyAsync(CloseNotifyTimeout, _time);
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or ConnectionAbortedException or ConnectionResetException or OperationCanceledException)
        {
            // The connection failed or was closed already: nothing more can be sent.
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
    /// A connection's handshake until it completes: ends at the handshake timeout (from the accept) or when
    /// shutdown asks the connection to close.
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

        /// <summary>From now until <see cref="Complete"/>, the end aborts the connection: a handshake waiting on a write sees no token.</summary>
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
