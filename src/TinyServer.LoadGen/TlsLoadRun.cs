using System.Buffers;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using HdrHistogram;
using TinyServer.Protocol;

namespace TinyServer.LoadGen;

/// <summary>
/// A run over TLS. The epoll loop cannot speak TLS, so each connection is its own async loop over an
/// <see cref="SslStream"/>, with the same rules as the loop: up to --pipeline requests in flight, each reply lets
/// the next request go, every reply checked against the same <see cref="Workload"/> bytes and timed into the same
/// HdrHistogram, the same error kinds, progress lines and report. It costs more CPU per request than the loop (TLS
/// itself, and the runtime's async socket engine), so its numbers measure TLS through this driver.
/// </summary>
internal sealed class TlsLoadRun
{
    private static readonly TimeSpan ProgressInterval = TimeSpan.FromSeconds(1);

    private readonly LoadOptions _options;
    private readonly Workload _workload;
    private readonly EndPoint _endPoint;
    private readonly TextWriter _progress;
    private readonly Lock _lock = new();
    private readonly ErrorCounts _errors = new(); // Guarded by _lock, as are the histograms.
    private readonly LongHistogram _sincePrint = Histograms.New();
    private readonly LongHistogram _measured = Histograms.New();
    private readonly List<Sample> _samples = [];
    private long _start;
    private long _measureStart;
    private long _issueEnd;
    private long _recordEnd;
    private long _lastReply;
    private long _loadEnd; // When the last driver stopped.

    private TlsLoadRun(LoadOptions options, Workload workload, EndPoint endPoint, TextWriter progress)
    {
        _options = options;
        _workload = workload;
        _endPoint = endPoint;
        _progress = progress;
    }

    public static RunResult Run(LoadOptions options, Workload workload, EndPoint endPoint, TextWriter progress) =>
        new TlsLoadRun(options, workload, endPoint, progress).RunAsync().GetAwaiter().GetResult();

    private async Task<RunResult> RunAsync()
    {
        long connectStart = Clock.Now;
        List<SslStream> open = await ConnectAllAsync();
        try
        {
            _start = Clock.Now;
            _measureStart = _start + Clock.FromSeconds(_options.WarmupSeconds);
            bool fixedCount = _options.Requests is not null;
            _issueEnd = fixedCount ? _start + Clock.FromSeconds(_options.TimeoutSeconds) : _measureStart + Clock.FromSeconds(_options.DurationSeconds);
            _recordEnd = fixedCount ? long.MaxValue : _issueEnd;
            _lastReply = _measureStart;
            using var over = new CancellationTokenSource(TimeSpan.FromSeconds(Clock.ToSeconds(_issueEnd - _start)));
            long requests = _options.Requests ?? 0;
            var drivers = new Task<bool>[open.Count];
            for (int i = 0; i < open.Count; i++)
            {
                long share = _options.Requests is null ? long.MaxValue : (requests * (i + 1) / open.Count) - (requests * i / open.Count);
                (SslStream stream, int index) = (open[i], i);
                drivers[i] = Task.Run(() => DriveAsync(stream, share, index, over.Token));
            }

            await ReportProgressAsync(Task.WhenAll(drivers));
            if (fixedCount)
            {
                lock (_lock)
                {
                    foreach (Task<bool> driver in drivers)
                    {
                        if (!driver.Result)
                        {
                            _errors.Add(ErrorKind.Timeout); // Requests were left when --timeout ended the run.
                        }
                    }
                }
            }
        }
        finally
        {
            foreach (SslStream stream in open)
            {
                await stream.DisposeAsync();
            }
        }

        // The drivers stop at _issueEnd by a timer, which may fire a little early: only a clear lead is an early end.
        bool endedEarly = _options.Requests is null && _loadEnd + Clock.FromSeconds(0.01) < _issueEnd;
        return new RunResult
        {
            Options = _options,
            Workload = _workload.Description,
            Connected = open.Count,
            ConnectSeconds = Clock.ToSeconds(_start - connectStart),
            DurationSeconds = Clock.ToSeconds(Math.Max(0, (_options.Requests is null ? (endedEarly ? _loadEnd : _recordEnd) : _lastReply) - _measureStart)),
            EndedEarly = endedEarly,
            EndPoint = RunResult.Describe(_endPoint),
            Latency = _measured,
            Errors = _errors,
            ConnectRetries = 0,
            Sessions = 0,
            Reconnects = 0,
            Resent = 0,
            Samples = _samples,
        };
    }

    // Opens every connection (TCP, TLS handshake, banner), --connect-batch at a time, within --connect-timeout.
    private async Task<List<SslStream>> ConnectAllAsync()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(_options.ConnectTimeoutSeconds));
        using var batch = new SemaphoreSlim(_options.ConnectBatch);
        var dials = new Task<(SslStream? Stream, string? Failure)>[_options.Connections];
        for (int i = 0; i < dials.Length; i++)
        {
            dials[i] = Task.Run(async () =>
            {
                await batch.WaitAsync(CancellationToken.None);
                try
                {
                    return await DialAsync(deadline.Token);
                }
                finally
                {
                    batch.Release();
                }
            });
        }

        var open = new List<SslStream>();
        foreach ((SslStream? stream, string? failure) in await Task.WhenAll(dials))
        {
            if (stream is null)
            {
                _errors.AddConnect(failure ?? "");
            }
            else
            {
                open.Add(stream);
            }
        }

        return open;
    }

    /// <summary>An open stream greeted by the banner, or null and why not (a connect error).</summary>
    private async Task<(SslStream? Stream, string? Failure)> DialAsync(CancellationToken cancellationToken)
    {
        var socket = new Socket(_endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(_endPoint, cancellationToken);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            socket.Dispose();
            return (null, e is SocketException refused ? ErrorCounts.Describe(refused.SocketErrorCode) : "not connected within --connect-timeout");
        }

        var stream = new SslStream(new NetworkStream(socket, ownsSocket: true));
        string failure = "closed before the banner";
        try
        {
            await stream.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = _options.Host,
                RemoteCertificateValidationCallback = _options.Insecure ? static (_, _, _, _) => true : null,
            }, cancellationToken);
            byte[] buffer = new byte[Workload.Banner.MaxLength + 2];
            using var decoder = new LineDecoder(buffer.Length - 2);
            int filled = 0;
            while (true)
            {
                int received = await stream.ReadAsync(buffer.AsMemory(filled), cancellationToken);
                if (received == 0)
                {
                    break;
                }

                filled += received;
                var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(buffer, 0, filled));
                LineStatus status = decoder.TryReadLine(ref reader, isFinalBlock: false, telnetReplies: null, out ReadOnlySpan<byte> line);
                if (status == LineStatus.NeedMoreData && filled < buffer.Length)
                {
                    continue;
                }

                // The server sends nothing after its banner until asked, so the buffer holds the banner alone.
                if (status == LineStatus.Line && Workload.Banner.Matches(line) && reader.Remaining == 0)
                {
                    return (stream, null);
                }

                failure = "wrong banner";
                break;
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or System.Security.Authentication.AuthenticationException)
        {
            // Not trusted, not TLS, or not greeted in time: a connect error.
            failure = e switch
            {
                OperationCanceledException => stream.IsAuthenticated ? "no banner within --connect-timeout" : "no TLS handshake within --connect-timeout",
                System.Security.Authentication.AuthenticationException => $"TLS handshake failed: {e.Message.TrimEnd('.')}",
                _ when e.InnerException is SocketException inner => ErrorCounts.Describe(inner.SocketErrorCode),
                SocketException socketError => ErrorCounts.Describe(socketError.SocketErrorCode),
                _ => e.Message.TrimEnd('.'),
            };
        }

        await stream.DisposeAsync();
        return (null, failure);
    }

    /// <summary>One connection's load. True when its share of the requests was answered (or the -d run ended).</summary>
    private async Task<bool> DriveAsync(SslStream stream, long share, int index, CancellationToken over)
    {
        int pipeline = _options.Pipeline;
        byte[] receive = new byte[_workload.ReceiveBufferSize(pipeline)];
        byte[] send = new byte[pipeline * _workload.LongestRequest];
        long[] sentAt = new long[pipeline];
        int[] sentCommand = new int[pipeline];
        using var decoder = new LineDecoder(receive.Length - 2);
        int schedule = index % _workload.Schedule.Length;
        int head = 0, inFlight = 0, filled = 0;
        long toSend = share;
        try
        {
            while (true)
            {
                // Top the pipeline up, in one write.
                int length = 0;
                long now = Clock.Now;
                while (inFlight < pipeline && toSend > 0 && now < _issueEnd)
                {
                    int command = _workload.Schedule[schedule];
                    schedule = schedule + 1 == _workload.Schedule.Length ? 0 : schedule + 1;
                    byte[] request = _workload.Requests[command];
                    request.CopyTo(send.AsSpan(length));
                    length += request.Length;
                    int slot = (head + inFlight) % pipeline;
                    sentAt[slot] = now;
                    sentCommand[slot] = command;
                    inFlight++;
                    toSend--;
                }

                if (length > 0)
                {
                    await stream.WriteAsync(send.AsMemory(0, length), over);
                }

                if (inFlight == 0)
                {
                    return toSend == 0 || _options.Requests is null;
                }

                using var replyTimeout = CancellationTokenSource.CreateLinkedTokenSource(over);
                replyTimeout.CancelAfter(TimeSpan.FromSeconds(_options.ReplyTimeoutSeconds));
                int received;
                try
                {
                    received = await stream.ReadAsync(receive.AsMemory(filled), replyTimeout.Token);
                }
                catch (OperationCanceledException) when (!over.IsCancellationRequested)
                {
                    AddError(ErrorKind.Timeout);
                    return true; // Counted; the connection is closed.
                }

                if (received == 0)
                {
                    AddError(ErrorKind.Lost, inFlight); // Closed with requests in flight: each is lost.
                    return true;
                }

                filled += received;
                now = Clock.Now;
                var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(receive, 0, filled));
                while (true)
                {
                    LineStatus status = decoder.TryReadLine(ref reader, isFinalBlock: false, telnetReplies: null, out ReadOnlySpan<byte> line);
                    if (status == LineStatus.NeedMoreData)
                    {
                        break;
                    }

                    if (status != LineStatus.Line || inFlight == 0)
                    {
                        AddError(ErrorKind.WrongReply); // Too long to be a reply we expect, or one nobody asked for.
                        return true;
                    }

                    int slot = head;
                    head = head + 1 == pipeline ? 0 : head + 1;
                    inFlight--;
                    Record(_workload.Matches(sentCommand[slot], line), now - sentAt[slot], now);
                }

                int consumed = (int)reader.Consumed;
                receive.AsSpan(consumed, filled - consumed).CopyTo(receive);
                filled -= consumed;
            }
        }
        catch (Exception e) when (over.IsCancellationRequested && e is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
        {
            return _options.Requests is null; // -d: the run is over. -n: --timeout struck with requests left.
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            AddError(ErrorKind.Lost, inFlight); // Reset, or the TLS stream broke: the requests in flight are lost.
            return true;
        }
    }

    private void Record(bool matched, long ticks, long now)
    {
        lock (_lock)
        {
            if (!matched)
            {
                _errors.Add(ErrorKind.WrongReply);
            }

            if (now <= _recordEnd)
            {
                _sincePrint.RecordValue(Math.Clamp(Clock.ToNanoseconds(ticks), 1, Histograms.HighestNanoseconds));
                _lastReply = Math.Max(_lastReply, now);
            }
        }
    }

    private void AddError(ErrorKind kind, long count = 1)
    {
        lock (_lock)
        {
            _errors.Add(kind, count);
        }
    }

    // Once a second, at the end of the warmup and at the end: the latencies so far into the result, a progress line.
    private async Task ReportProgressAsync(Task load)
    {
        long lastPrint = _start;
        bool measuring = _measureStart == _start;
        while (true)
        {
            long now = Clock.Now;
            long next = Math.Min(now + Clock.FromSeconds(ProgressInterval.TotalSeconds), measuring ? _issueEnd : _measureStart);
            Task finished = await Task.WhenAny(load, Task.Delay(TimeSpan.FromSeconds(Math.Max(0, Clock.ToSeconds(next - now)))));
            now = Clock.Now;
            bool over = finished == load || now + Clock.FromSeconds(0.002) >= _issueEnd; // A timer may wake a little early.
            if (over)
            {
                // The drivers stop at _issueEnd (or have finished): wait for their last replies before the last line.
                await load.WaitAsync(TimeSpan.FromSeconds(_options.ReplyTimeoutSeconds + 5));
                now = Clock.Now;
                _loadEnd = now;
            }

            lock (_lock)
            {
                bool warmup = !measuring;
                if (measuring)
                {
                    _measured.Add(_sincePrint);
                }

                double seconds = Clock.ToSeconds(now - lastPrint);
                _samples.Add(new Sample(Clock.ToSeconds(now - _start), seconds > 0 ? _sincePrint.TotalCount / seconds : 0, warmup));
                _progress.WriteLine(LoadRun.ProgressLine(Clock.ToSeconds(now - _start), warmup, seconds, _sincePrint, _errors.Total));
                _sincePrint.Reset();
                measuring |= now >= _measureStart;
            }

            lastPrint = now;
            if (over)
            {
                return;
            }
        }
    }
}
