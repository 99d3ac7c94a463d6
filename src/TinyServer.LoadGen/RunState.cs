using System.Diagnostics;
using System.Net;
using HdrHistogram;
using TinyServer.Interop;

namespace TinyServer.LoadGen;

/// <summary>
/// What the connections of a run share: settings, the time window, the dial queue, the counters and the latency
/// histogram. Everything here is used from the one thread that runs the event loop, so nothing is locked.
/// </summary>
internal sealed class RunState(LoadOptions options, EndPoint endPoint, Workload workload) : IDisposable
{
    public LoadOptions Options { get; } = options;

    public EndPoint EndPoint { get; } = endPoint;

    public Workload Workload { get; } = workload;

    public Epoll Epoll { get; } = new();

    public ErrorCounts Errors { get; } = new();

    /// <summary>Latencies (nanoseconds) recorded since the event loop last drained it.</summary>
    public LongHistogram Latency { get; } = Histograms.New();

    /// <summary>Connections waiting for their turn to dial (at most --connect-batch dial at once).</summary>
    public Queue<Connection> DialQueue { get; } = new();

    /// <summary>Connections dialling or waiting for their banner.</summary>
    public int Dialling { get; set; }

    /// <summary>Connections waiting the backoff before they dial again (a redial failed, or ended before any reply).</summary>
    public int Waiting { get; set; }

    /// <summary>--connect-timeout in ticks: also how long a connection that ended may take to be replaced.</summary>
    public long ConnectTimeout { get; } = Clock.FromSeconds(options.ConnectTimeoutSeconds);

    /// <summary>--redial-backoff in ticks: the first wait of a reconnect (after a failed redial, or a new connection ended before any reply).</summary>
    public long RedialBackoff { get; } = Clock.FromSeconds(options.RedialBackoffSeconds);

    /// <summary>--redial-backoff-max in ticks.</summary>
    public long RedialBackoffMax { get; } = Clock.FromSeconds(options.RedialBackoffMaxSeconds);

    /// <summary>--retry-after in ticks; 0 never redials.</summary>
    public long RetryAfter { get; } = Clock.FromSeconds(options.RetryAfterSeconds);

    /// <summary>--reply-timeout in ticks.</summary>
    public long ReplyTimeout { get; } = Clock.FromSeconds(options.ReplyTimeoutSeconds);

    /// <summary>Ticks between two requests of one connection at --rate; 0 without a rate.</summary>
    public long RateInterval { get; private set; }

    /// <summary>When the load started (the warmup, if any, starts here).</summary>
    public long Start { get; private set; }

    /// <summary>When the measurement starts: the end of the warmup.</summary>
    public long MeasureStart { get; private set; }

    /// <summary>No request is sent from this time on: the end of -d, or the -n run's --timeout. 0 before the load starts.</summary>
    public long IssueEnd { get; private set; }

    /// <summary>Replies after this time are not recorded: the end of -d (never, for -n).</summary>
    public long RecordEnd { get; private set; }

    /// <summary>At --rate, the earliest time a connection with room in its pipeline has a request due.</summary>
    public long NextPace { get; set; }

    /// <summary>Connections that are done or dead: when all are, the run is over.</summary>
    public int Ended { get; set; }

    /// <summary>Dials closed and made again because the banner had not come after --retry-after.</summary>
    public long ConnectRetries { get; set; }

    /// <summary>Sessions ended by QUIT (--requests-per-session).</summary>
    public long Sessions { get; set; }

    /// <summary>Connections that ended and were opened again (after BYE, a closing notice, or the server's close).</summary>
    public long Reconnects { get; set; }

    /// <summary>Requests answered with ERROR SHUTTING_DOWN (not executed) and sent again on a new connection.</summary>
    public long Resent { get; set; }

    /// <summary>With --tls, the OpenSSL context every connection's session is made from; null without.</summary>
    public OpenSsl? OpenSsl { get; } = options.Tls ? new OpenSsl(options.Host, options.Insecure, options.TlsResume) : null;

    /// <summary>TLS handshakes completed in the measurement window (a -n run's: after the first dials).</summary>
    public long Handshakes { get; set; }

    /// <summary>Those of <see cref="Handshakes"/> the server resumed from a ticket.</summary>
    public long ResumedHandshakes { get; set; }

    /// <summary>Sets the window of the run, which starts now with <paramref name="connections"/> connections up.</summary>
    public void Begin(long now, int connections)
    {
        Start = now;
        MeasureStart = now + Clock.FromSeconds(Options.WarmupSeconds);
        bool fixedCount = Options.Requests is not null;
        IssueEnd = fixedCount ? now + Clock.FromSeconds(Options.TimeoutSeconds) : MeasureStart + Clock.FromSeconds(Options.DurationSeconds);
        RecordEnd = fixedCount ? long.MaxValue : IssueEnd;
        RateInterval = Options.Rate is double rate ? Math.Max(1, (long)(Stopwatch.Frequency * (connections / rate))) : 0;
    }

    /// <summary>The next wait of a reconnect, given the one before: twice as long, at most --redial-backoff-max.</summary>
    public long NextRedialWait(long wait) => Math.Min(2 * wait, RedialBackoffMax);

    public void Record(long ticks) =>
        Latency.RecordValue(Math.Clamp(Clock.ToNanoseconds(ticks), 1, Histograms.HighestNanoseconds));

    public void Dispose()
    {
        Epoll.Dispose();
        OpenSsl?.Dispose();
    }
}
