using System.Net;
using System.Net.Sockets;
using HdrHistogram;

namespace TinyServer.LoadGen;

/// <summary>One second of the run, as the progress line showed it.</summary>
internal readonly record struct Sample(double Seconds, double RequestsPerSecond, bool Warmup);

/// <summary>What a run measured.</summary>
internal sealed record RunResult
{
    public required LoadOptions Options { get; init; }

    /// <summary>The mix as sent, e.g. <c>ECHO hello:3,TIME:1</c>.</summary>
    public required string Workload { get; init; }

    /// <summary>Connections up when the load started.</summary>
    public required int Connected { get; init; }

    public required double ConnectSeconds { get; init; }

    /// <summary>Replies received inside the measurement window, each timed into <see cref="Latency"/>.</summary>
    public long Requests => Latency.TotalCount;

    /// <summary>
    /// The measurement window: -d (up to the time the run ended, when it ended early), or for -n from the start to
    /// the last reply.
    /// </summary>
    public required double DurationSeconds { get; init; }

    /// <summary>A -d run that ended before its time because no connection was left (all failed or closed).</summary>
    public required bool EndedEarly { get; init; }

    /// <summary>The address connected to, as the connect errors name it: <c>127.0.0.1:40000</c>, <c>[::1]:40000</c>, <c>unix:PATH</c>.</summary>
    public required string EndPoint { get; init; }

    /// <summary>Latency in nanoseconds of every reply in the window.</summary>
    public required HistogramBase Latency { get; init; }

    public required ErrorCounts Errors { get; init; }

    /// <summary>Dials closed and made again because the banner had not come after --retry-after.</summary>
    public required long ConnectRetries { get; init; }

    /// <summary>Sessions ended by QUIT (--requests-per-session).</summary>
    public required long Sessions { get; init; }

    /// <summary>Connections that ended (BYE, ERROR SHUTTING_DOWN, the server's close) and were opened again; not errors.</summary>
    public required long Reconnects { get; init; }

    /// <summary>Requests the server did not execute (ERROR SHUTTING_DOWN came in their place), sent again after a reconnect.</summary>
    public required long Resent { get; init; }

    /// <summary>Requests sent and never answered (their connection ended with them in flight): errors, not sent again.</summary>
    public long Lost => Errors[ErrorKind.Lost];

    /// <summary>TLS handshakes completed in the window (--tls), and of those, the ones resumed from a ticket.</summary>
    public required long Handshakes { get; init; }

    public required long ResumedHandshakes { get; init; }

    /// <summary>
    /// CPU time (user and system, every thread) the load generator itself used in the window: to compare with the
    /// server's, since both share the machine.
    /// </summary>
    public required double CpuSeconds { get; init; }

    public required IReadOnlyList<Sample> Samples { get; init; }

    public double HandshakesPerSecond => DurationSeconds > 0 ? Handshakes / DurationSeconds : 0;

    /// <summary>Microseconds of the load generator's CPU per request answered in the window.</summary>
    public double CpuMicrosecondsPerRequest => Requests > 0 ? CpuSeconds * 1e6 / Requests : 0;

    public double RequestsPerSecond => DurationSeconds > 0 ? Requests / DurationSeconds : 0;

    /// <summary>The latency at <paramref name="percentile"/> (0 to 100) in microseconds; 0 when nothing was measured.</summary>
    public double Microseconds(double percentile) =>
        Requests == 0 ? 0 : Latency.GetValueAtPercentile(percentile) / 1000.0;

    public double MaxMicroseconds => Requests == 0 ? 0 : Latency.GetMaxValue() / 1000.0;

    public double MeanMicroseconds => Requests == 0 ? 0 : Latency.GetMean() / 1000.0;

    /// <summary>How <see cref="EndPoint"/> shows <paramref name="endPoint"/>.</summary>
    public static string Describe(EndPoint endPoint) =>
        endPoint is UnixDomainSocketEndPoint unix ? $"unix:{unix}" : endPoint.ToString() ?? "";
}
