using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using TinyServer.Protocol;

namespace TinyServer.Server;

/// <summary>
/// One TinyServer connection on Kestrel: the banner, then the canonical pipe loop. Every complete line of a read
/// is answered into the output pipe, which is flushed once per read. Limits: the connection count, the idle
/// timeout (one heartbeat a second for every connection, <see cref="ConnectionTracker.StartBeating"/>, no timer per
/// connection), an output budget per read so that a peer that does not read stalls only itself, and a graceful drain
/// on shutdown.
/// </summary>
public sealed class LineConnectionHandler(ServerOptions options, TimeProvider time, ConnectionTracker tracker, ServerMetrics metrics, ILogger<LineConnectionHandler> logger) : ConnectionHandler
{
    /// <summary>While lingering before a close, a pause in the client's input this long ends the wait.</summary>
    public static readonly TimeSpan QuietPeriod = TimeSpan.FromMilliseconds(100);

    public override Task OnConnectedAsync(ConnectionContext connection)
    {
        // After the PROXY header, when there is one: the limits count the original client's address.
        IPAddress? address = tracker.AddressKey(connection.RemoteEndPoint);
        return tracker.TryAdmit(address, out string? rejection) ? ServeAsync(connection, address) : RejectAsync(connection, rejection!);
    }

    /// <summary>Over a connection limit: Kestrel's own limit would close silently, so tell the client why.</summary>
    private async Task RejectAsync(ConnectionContext connection, string rejection)
    {
        ReplyWriter.WriteError(connection.Transport.Output, ErrorCode.TooManyConnections);
        metrics.Rejected(rejection);
        metrics.ErrorSent(ErrorCode.TooManyConnections);
        Log.ConnectionRejected(logger, connection.ConnectionId, connection.RemoteEndPoint, rejection);
        try
        {
            if (!(await connection.Transport.Output.FlushAsync()).IsCompleted)
            {
                await LingerAsync(connection.Transport.Input);
            }
        }
        catch (Exception e) when (e is IOException or ConnectionAbortedException)
        {
            // Gone already.
        }
    }

    /// <summary>An admitted connection, until it closes; it then leaves the limits of <paramref name="address"/>.</summary>
    private async Task ServeAsync(ConnectionContext connection, IPAddress? address)
    {
        bool logging = logger.IsEnabled(LogLevel.Debug);
        if (logging)
        {
            Log.ConnectionOpened(logger, connection.ConnectionId, connection.RemoteEndPoint);
        }

        // What lives across the awaits below is kept in the state machine of every connection, idle ones included:
        // the pipes are fetched from the connection when needed, the answering of a read is a method of its own, and
        // the session (the line decoder, the counts) is made when the first bytes arrive.
        ServerSession? session = null;
        var watch = new Watch(connection, TimeSpan.FromSeconds(options.IdleTimeoutSeconds), time);
        int beat = options.IdleTimeoutSeconds > 0 ? tracker.StartBeating(watch) : -1;
        using CancellationTokenRegistration onShutdown = connection.Features.Get<IConnectionLifetimeNotificationFeature>()?
            .ConnectionClosedRequested.Register(static state => ((Watch)state!).OnShutdown(), watch) ?? default;
        string reason = "";
        bool graceful = false;
        try
        {
            ReplyWriter.WriteBanner(connection.Transport.Output);
            metrics.BannerSent();
            bool open = !(await connection.Transport.Output.FlushAsync()).IsCompleted;
            while (open)
            {
                ReadResult result = await connection.Transport.Input.ReadAsync();
                long started = metrics.BatchStarted();
                if (session is null && (!result.Buffer.IsEmpty || result.IsCompleted))
                {
                    session = new ServerSession(time, options.MaxLineLength);
                }

                long answered = session?.Requests ?? 0;
                SessionStatus status = Answer(session, watch, result, ref reason);
                if ((session?.Requests ?? 0) == answered)
                {
                    started = 0; // No request answered: no batch duration to record.
                }

                bool peerDone = result.IsCompleted;
                watch.Flushing = true;
                ValueTask<FlushResult> flushing = connection.Transport.Output.FlushAsync();
                bool waited = !flushing.IsCompleted;
                bool flushedAll = !(await flushing).IsCompleted;
                watch.Flushing = false;
                metrics.BatchFlushed(started);

                if (waited)
                {
                    if (watch.Cut)
                    {
                        reason = "idle timeout while the peer was not reading"; // The flush ended with the connection.
                        return;
                    }

                    watch.Progress(); // The peer read: the transport could take our replies.
                }

                open = status != SessionStatus.Closed && flushedAll;
                graceful = status == SessionStatus.Closed && flushedAll; // Our last line reached the transport.
                if (graceful && !peerDone)
                {
                    await LingerAsync(connection.Transport.Input);
                }
            }
        }
        catch (Exception e) when (e is IOException or ConnectionAbortedException or OperationCanceledException)
        {
            // A peer that resets or vanishes is routine: no stack trace above Debug.
            reason = e.Message;
        }
        finally
        {
            watch.Stop();
            if (beat >= 0)
            {
                tracker.StopBeating(beat);
            }

            session?.Dispose();
            tracker.Leave(address);
            if (watch.Ending == ErrorCode.ShuttingDown)
            {
                if (graceful)
                {
                    tracker.CountDrained();
                }
                else
                {
                    tracker.CountAborted();
                }
            }

            if (logging)
            {
                Log.ConnectionClosed(logger, connection.ConnectionId, connection.RemoteEndPoint, session?.CloseReason is null or CloseReason.None ? reason : session.CloseReason.ToString(), session?.Requests ?? 0);
            }
        }
    }

    /// <summary>
    /// Answers the complete lines of one read into the output (not flushed), tells the input how far they were
    /// consumed, and publishes what the session counted, so that a connection's counts are in as soon as its replies
    /// are written. When the idle timeout or shutdown canceled the read, the goodbye is written instead and
    /// <paramref name="reason"/> says why.
    /// </summary>
    private SessionStatus Answer(ServerSession? session, Watch watch, in ReadResult result, ref string reason)
    {
        PipeReader input = watch.Connection.Transport.Input;
        PipeWriter output = watch.Connection.Transport.Output;
        ReadOnlySequence<byte> buffer = result.Buffer;
        SessionStatus status = SessionStatus.NeedMoreInput;
        if (session is null)
        {
            input.AdvanceTo(buffer.End); // Nothing has arrived yet: a read canceled by the idle timeout or shutdown.
        }
        else
        {
            var published = ServerMetrics.Published.Of(session);
            long answered = session.Requests;
            status = SessionStatus.Closed;
            SequencePosition consumed = buffer.Start;
            try
            {
                status = session.Process(buffer, result.IsCompleted, output, options.MaxWriteBuffer, out consumed);
            }
            finally
            {
                // OutputFull: lines are waiting in the buffer, so the next read must not wait for new bytes.
                input.AdvanceTo(consumed, status == SessionStatus.OutputFull ? consumed : buffer.End);
                metrics.OnBatch(session, ref published, 0);
            }

            if (session.Requests != answered)
            {
                watch.Progress();
            }
        }

        if (status != SessionStatus.Closed && result.IsCanceled && watch.Ending is { } ending)
        {
            ReplyWriter.WriteError(output, ending);
            metrics.ErrorSent(ending);
            status = SessionStatus.Closed;
            reason = ending == ErrorCode.ShuttingDown ? "shutting down" : "idle timeout";
        }

        return status;
    }

    /// <summary>
    /// The server has sent its last reply and will close. Closing with unread input would make the kernel answer
    /// with a reset and drop the replies it has not delivered yet, so first read and discard what the client still
    /// sends, until it closes, pauses for <see cref="QuietPeriod"/>, or the linger timeout passes.
    /// </summary>
    private Task LingerAsync(PipeReader input) => LingerAsync(input, TimeSpan.FromSeconds(options.LingerTimeoutSeconds), time, CancellationToken.None);

    /// <summary>
    /// Reads and discards <paramref name="input"/> until the client closes, pauses for <see cref="QuietPeriod"/>,
    /// <paramref name="timeout"/> passes on <paramref name="time"/>, or <paramref name="end"/> is canceled.
    /// </summary>
    internal static async Task LingerAsync(PipeReader input, TimeSpan timeout, TimeProvider time, CancellationToken end)
    {
        long started = time.GetTimestamp();
        using var quiet = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time); // CancelAfter runs on time too.
        using CancellationTokenRegistration onEnd = end.Register(static state => ((CancellationTokenSource)state!).Cancel(), quiet);
        try
        {
            while (timeout - time.GetElapsedTime(started) is var left && left > TimeSpan.Zero)
            {
                quiet.CancelAfter(left < QuietPeriod ? left : QuietPeriod);
                ReadResult result = await input.ReadAsync(quiet.Token);
                input.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted || result.IsCanceled)
                {
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The client paused (nothing unread is left behind), or the wait is over.
        }
        catch (Exception e) when (e is IOException or ConnectionAbortedException)
        {
            // The client reset or vanished: nothing more to protect.
        }
    }

    /// <summary>
    /// The connection's clock and end signals, driven from the tracker's heartbeat and Kestrel's shutdown threads. The
    /// clock measures how long the peer has neither sent a line nor read a reply: it restarts when a line is answered,
    /// when a flush that had to wait for the peer completes, and when a heartbeat sees the kernel's send queue for the
    /// connection move. The last one matters: on loopback the send buffer grows to megabytes and a full socket takes
    /// writes again only once about a third of it is free, so a flush can wait for many seconds while the peer reads
    /// steadily.
    /// The queue is looked at (one system call) only while a flush waits or the queue held bytes at the last look.
    /// Every connection, idle ones included, has one: it keeps only the connection and fetches the pipes and the socket
    /// from it when needed.
    /// </summary>
    private sealed class Watch(ConnectionContext connection, TimeSpan idleTimeout, TimeProvider time) : IHeartbeat
    {
        private long _lastProgress = time.GetTimestamp();
        private int _queued; // The send queue at the last look; heartbeat thread only.
        private volatile int _ending = -1;
        private volatile bool _flushing;
        private volatile bool _stopped;
        private volatile bool _cut;

        /// <summary>The error that ends the connection early (idle timeout, shutdown), once one was decided.</summary>
        public ErrorCode? Ending => _ending < 0 ? null : (ErrorCode)_ending;

        /// <summary>Set around a flush: one that waits for the peer a whole timeout without progress ends the connection.</summary>
        public bool Flushing
        {
            get => _flushing;
            set => _flushing = value;
        }

        /// <summary>True once the connection was aborted for a flush that made no progress for a whole timeout.</summary>
        public bool Cut => _cut;

        public ConnectionContext Connection => connection;

        /// <summary>The peer sent a line or took replies: the clock starts again.</summary>
        public void Progress() => Volatile.Write(ref _lastProgress, time.GetTimestamp());

        /// <summary>The handler is done: a heartbeat still under way does nothing.</summary>
        public void Stop() => _stopped = true;

        public void OnHeartbeat()
        {
            int ending = _ending;
            // Once the timeout struck, only its goodbye is watched; during shutdown, the shutdown timeout rules.
            if (idleTimeout <= TimeSpan.Zero || _stopped || (ending >= 0 && (ending != (int)ErrorCode.IdleTimeout || !_flushing)))
            {
                return;
            }

            long now = time.GetTimestamp();
            if ((_flushing || _queued > 0) && connection.Features.Get<IConnectionSocketFeature>()?.Socket is { } socket)
            {
                int queued = Interop.NonBlocking.SendQueue(socket);
                if (queued >= 0 && queued != _queued)
                {
                    // Fell: the peer took bytes. Grew: the kernel took more of ours, having had room.
                    Volatile.Write(ref _lastProgress, now);
                }

                _queued = Math.Max(queued, 0);
            }

            if (time.GetElapsedTime(Volatile.Read(ref _lastProgress), now) < idleTimeout)
            {
                return;
            }

            if (ending >= 0)
            {
                Abort(); // The goodbye waited a whole timeout for a peer that does not read.
            }
            else if (Interlocked.CompareExchange(ref _ending, (int)ErrorCode.IdleTimeout, -1) < 0)
            {
                Volatile.Write(ref _lastProgress, now); // The goodbye gets a whole timeout of its own.
                connection.Transport.Input.CancelPendingRead();
                if (_flushing)
                {
                    Abort(); // Waiting, with no progress, for the whole timeout.
                }
            }
        }

        /// <summary>
        /// Nothing more can reach a peer that neither sends nor reads: the connection is aborted, which ends the
        /// waiting flush on every transport, through TLS too. (Canceling the flush instead would leave the bytes in the
        /// transport's writer, where the close would try to write them again to the same peer.)
        /// </summary>
        private void Abort()
        {
            _cut = true;
            connection.Abort(new ConnectionAbortedException("The idle timeout struck while the peer was not reading."));
        }

        public void OnShutdown()
        {
            if (Interlocked.CompareExchange(ref _ending, (int)ErrorCode.ShuttingDown, -1) < 0)
            {
                connection.Transport.Input.CancelPendingRead();
            }
        }
    }
}
