using System.Globalization;
using System.Net;
using HdrHistogram;

namespace TinyServer.LoadGen;

/// <summary>
/// A whole run, on one thread, as one epoll event loop (as the C reference runs): open the connections in batches,
/// load for the warmup and the measurement, print progress once a second, close connections that wait past
/// --reply-timeout, and gather the result.
/// </summary>
internal sealed class LoadRun
{
    private static readonly long Second = Clock.FromSeconds(1);
    private static readonly long Tick = Clock.FromSeconds(0.1);

    private readonly RunState _run;
    private readonly Connection[] _connections;
    private readonly TextWriter _progress;
    private readonly LongHistogram _sincePrint = Histograms.New();
    private readonly LongHistogram _measured = Histograms.New();
    private readonly List<Sample> _samples = [];
    private bool _measuring;
    private TimeSpan _cpuAtMeasureStart;
    private TimeSpan _cpuAtEnd;
    private long _lastPrint;
    private long _nextPrint;

    private LoadRun(RunState run, TextWriter progress)
    {
        _run = run;
        _progress = progress;
        _connections = new Connection[run.Options.Connections];
        for (int i = 0; i < _connections.Length; i++)
        {
            _connections[i] = new Connection(i, run);
        }
    }

    /// <summary>Runs the load; progress lines go to <paramref name="progress"/>.</summary>
    public static RunResult Run(LoadOptions options, Workload workload, EndPoint endPoint, TextWriter progress)
    {
        using var run = new RunState(options, endPoint, workload);
        return new LoadRun(run, progress).Run();
    }

    private RunResult Run()
    {
        LoadOptions options = _run.Options;
        long connectStart = Clock.Now;
        Connect(connectStart + Clock.FromSeconds(options.ConnectTimeoutSeconds));
        long now = Clock.Now;
        Connection[] live = [.. _connections.Where(c => c.State == ConnectionState.Open)];
        _run.Begin(now, live.Length);
        _measuring = _run.MeasureStart == _run.Start;
        _cpuAtMeasureStart = Environment.CpuUsage.TotalTime;
        _lastPrint = now;
        _nextPrint = now + Second;
        long requests = options.Requests ?? 0;
        for (int i = 0; i < live.Length; i++)
        {
            long share = options.Requests is null ? long.MaxValue : (requests * (i + 1) / live.Length) - (requests * i / live.Length);
            live[i].Start(share, _run.Start + (_run.RateInterval * i / live.Length));
            live[i].Pump(now);
        }

        long loadEnd = Load(live);
        int unfinished = 0;
        foreach (Connection connection in _connections)
        {
            unfinished += connection.State is ConnectionState.Done or ConnectionState.Dead ? 0 : 1;
            connection.Close();
        }

        if (options.Requests is not null)
        {
            for (int i = 0; i < unfinished; i++)
            {
                _run.Errors.Add(ErrorKind.Timeout); // Requests were left when --timeout ended the run.
            }
        }

        long lastReply = live.Length == 0 ? _run.MeasureStart : live.Max(c => c.LastReplyAt);
        bool endedEarly = options.Requests is null && loadEnd < _run.IssueEnd;
        return new RunResult
        {
            Options = options,
            Workload = _run.Workload.Description,
            Connected = live.Length,
            ConnectSeconds = Clock.ToSeconds(_run.Start - connectStart),
            DurationSeconds = Clock.ToSeconds(Math.Max(0, (options.Requests is null ? (endedEarly ? loadEnd : _run.RecordEnd) : lastReply) - _run.MeasureStart)),
            EndedEarly = endedEarly,
            EndPoint = RunResult.Describe(_run.EndPoint),
            Latency = _measured,
            Errors = _run.Errors,
            ConnectRetries = _run.ConnectRetries,
            Sessions = _run.Sessions,
            Reconnects = _run.Reconnects,
            Resent = _run.Resent,
            Handshakes = _run.Handshakes,
            ResumedHandshakes = _run.ResumedHandshakes,
            CpuSeconds = (_cpuAtEnd - _cpuAtMeasureStart).TotalSeconds,
            Samples = _samples,
        };
    }

    // Dials every connection, --connect-batch at a time, until all are greeted or failed or the deadline passes.
    private void Connect(long deadline)
    {
        foreach (Connection connection in _connections)
        {
            _run.DialQueue.Enqueue(connection);
        }

        long nextTick = Clock.Now + Tick;
        while (true)
        {
            long now = Clock.Now;
            StartDials(now);
            if ((_run.Dialling == 0 && _run.DialQueue.Count == 0 && _run.Waiting == 0) || now >= deadline)
            {
                break;
            }

            if (now >= nextTick)
            {
                nextTick = now + Tick;
                foreach (Connection connection in _connections)
                {
                    connection.RedialIfStuck(now);
                    connection.RetryIfDue(now);
                }
            }

            Dispatch(_run.Epoll.Wait(10_000_000), now);
        }

        _run.DialQueue.Clear();
        foreach (Connection connection in _connections)
        {
            connection.GiveUpIfNotOpen();
        }
    }

    /// <summary>Runs the load until its end, or until no connection is left; returns when it stopped.</summary>
    private long Load(Connection[] live)
    {
        long nextTick = Math.Min(_run.Start + Tick, _run.MeasureStart);
        // At --rate, the connections are looked at when the next request falls due, but no more often than this:
        // the look costs a little per connection.
        long paceGap = Clock.FromSeconds(Math.Max(20e-6, 50e-9 * live.Length));
        bool paced = _run.RateInterval > 0;
        while (true)
        {
            long wakeAt = paced ? Math.Min(nextTick, _run.NextPace) : nextTick;
            int events = _run.Epoll.Wait(Math.Max(0, Clock.ToNanoseconds(wakeAt - Clock.Now)));
            long now = Clock.Now;
            bool over = now >= _run.IssueEnd || _run.Ended == _connections.Length;
            if (now >= nextTick || over)
            {
                OnTick(now, over);
                nextTick = Math.Min(_run.Start + (((now - _run.Start) / Tick) + 1) * Tick, _measuring ? _run.IssueEnd : _run.MeasureStart);
            }

            if (over)
            {
                _cpuAtEnd = Environment.CpuUsage.TotalTime;
                return now;
            }

            Dispatch(events, now);
            StartDials(now);
            if (paced && now >= _run.NextPace)
            {
                _run.NextPace = long.MaxValue;
                foreach (Connection connection in live)
                {
                    connection.Pump(now);
                }

                _run.NextPace = Math.Max(_run.NextPace, now + paceGap);
            }
        }
    }

    private void Dispatch(int events, long now)
    {
        for (int i = 0; i < events; i++)
        {
            ulong token = _run.Epoll.Token(i);
            Connection connection = _connections[Connection.IndexOf(token)];
            if (connection.Owns(token))
            {
                connection.OnEvent(_run.Epoll.Events(i), now);
            }
        }
    }

    private void StartDials(long now)
    {
        while (_run.Dialling < _run.Options.ConnectBatch && _run.DialQueue.TryDequeue(out Connection? connection))
        {
            connection.Dial(now);
        }
    }

    // Every 0.1 s: redial stuck dials, make the redials whose wait is over, and close connections past --reply-timeout. Each second, at the end of the
    // warmup and at the end: take the latencies recorded so far (into the result once measuring), print progress.
    private void OnTick(long now, bool over)
    {
        foreach (Connection connection in _connections)
        {
            connection.RedialIfStuck(now);
            connection.RetryIfDue(now);
            connection.CloseIfTimedOut(now);
        }

        bool warmup = !_measuring;
        bool warmupOver = warmup && now >= _run.MeasureStart;
        if (now < _nextPrint && !over && !warmupOver)
        {
            return;
        }

        _sincePrint.Add(_run.Latency);
        if (_measuring)
        {
            _measured.Add(_run.Latency);
        }

        _run.Latency.Reset();
        if (warmupOver)
        {
            _measuring = true;
            _cpuAtMeasureStart = Environment.CpuUsage.TotalTime;
        }

        Print(now, warmup);
    }

    /// <summary>A progress line: time since the load started, requests/s, p50 and p99 over <paramref name="seconds"/>, errors so far.</summary>
    public static string ProgressLine(double at, bool warmup, double seconds, HistogramBase sincePrint, long errors)
    {
        double rate = seconds > 0 ? sincePrint.TotalCount / seconds : 0;
        bool any = sincePrint.TotalCount > 0;
        return string.Create(CultureInfo.InvariantCulture,
            $"{at,6:F1} s{(warmup ? " warmup" : "")}  {rate,10:F0} req/s  p50 {(any ? sincePrint.GetValueAtPercentile(50) / 1000.0 : 0),8:F1} us  p99 {(any ? sincePrint.GetValueAtPercentile(99) / 1000.0 : 0),8:F1} us  errors {errors}");
    }

    private void Print(long now, bool warmup)
    {
        double seconds = Clock.ToSeconds(now - _lastPrint);
        double rate = seconds > 0 ? _sincePrint.TotalCount / seconds : 0;
        _samples.Add(new Sample(Clock.ToSeconds(now - _run.Start), rate, warmup));
        _progress.WriteLine(ProgressLine(Clock.ToSeconds(now - _run.Start), warmup, seconds, _sincePrint, _run.Errors.Total));
        _sincePrint.Reset();
        _lastPrint = now;
        while (_nextPrint <= now)
        {
            _nextPrint += Second;
        }
    }
}
