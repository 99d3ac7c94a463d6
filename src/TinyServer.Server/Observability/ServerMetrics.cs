using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Numerics;
using System.Runtime.CompilerServices;
using TinyServer.Protocol;

namespace TinyServer.Server;

/// <summary>Why a connection was turned away before it was served: the <c>reason</c> tag of <c>tinyserver.connections.rejected</c>.</summary>
public static class RejectionReasons
{
    /// <summary><see cref="ServerOptions.MaxConnections"/> connections were being served.</summary>
    public const string MaxConnections = "max_connections";

    /// <summary><see cref="ServerOptions.MaxConnectionsPerAddress"/> connections from the client's address were being served.</summary>
    public const string MaxConnectionsPerAddress = "max_connections_per_address";

    /// <summary>A TLS port got a first byte that cannot start a TLS handshake (plain text): answered <c>ERROR TLS_REQUIRED</c>.</summary>
    public const string TlsRequired = "tls_required";

    /// <summary>
    /// A TLS port's client did not complete its handshake: it failed, the handshake timeout passed, or the client
    /// closed first (shutdown is not counted).
    /// </summary>
    public const string TlsHandshake = "tls_handshake";

    /// <summary>A TLS 1.2 client asked to renegotiate its session: refused, and the connection closed.</summary>
    public const string TlsRenegotiation = "tls_renegotiation";

    /// <summary>The name of a PROXY protocol rejection, e.g. <c>proxy_untrusted_peer</c>, <c>proxy_timeout</c>.</summary>
    public static string Proxy(ProxyRejection rejection) => rejection switch
    {
        ProxyRejection.UntrustedPeer => "proxy_untrusted_peer",
        ProxyRejection.InvalidHeader => "proxy_invalid_header",
        ProxyRejection.Timeout => "proxy_timeout",
        ProxyRejection.ClosedEarly => "proxy_closed_early",
        _ => throw new ArgumentOutOfRangeException(nameof(rejection)),
    };
}

/// <summary>
/// The <c>TinyServer</c> meter (README.md, "Metrics and logs"). Nothing is counted per request here: each session
/// counts its own requests in plain fields, and the connection handler publishes the differences once per read
/// (<see cref="OnBatch"/>) into process-wide totals. The totals are striped by processor, each stripe on its own cache
/// lines, so that connections served on different cores do not fight over one line. Every counter is an observable
/// instrument that reads the totals when a listener collects, so it costs nothing while nobody listens; the one
/// histogram is timed only while a listener has enabled it.
/// </summary>
public sealed class ServerMetrics
{
    public const string MeterName = "TinyServer";

    // Slots of one stripe. A stripe is Stride longs (256 bytes) and its slots start Padding longs in, so the slots of
    // two stripes are always more than 128 bytes apart (two cache lines, for the adjacent-line prefetcher).
    private const int Stride = 32;
    private const int Padding = 8;
    private const int BytesInSlot = 0;
    private const int BytesOutSlot = 1;
    private const int CommandSlot = 2; // + (int)Command, for Time, Echo, Help, Quit.
    private const int ErrorSlot = 8; // + (int)ErrorCode.
    private const int CommandKinds = (int)Command.Quit + 1;
    private const int ErrorCodes = (int)ErrorCode.TlsRequired + 1;

    private static readonly Command[] ReportedCommands = [Command.Time, Command.Echo, Command.Help, Command.Quit];
    private static readonly int BannerLength = Wire.Banner.Length;

    private readonly ConnectionTracker _tracker;
    private readonly long[] _stripes;
    private readonly int _stripeMask;
    private readonly ConcurrentDictionary<string, StrongBox<long>> _rejected = new(StringComparer.Ordinal);
    private readonly Histogram<double> _batchDuration;
    private readonly KeyValuePair<string, object?>[][] _commandTags;
    private readonly KeyValuePair<string, object?>[][] _errorTags;

    public ServerMetrics(IMeterFactory meterFactory, ConnectionTracker tracker)
    {
        _tracker = tracker;
        int stripes = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, Environment.ProcessorCount));
        _stripes = new long[stripes * Stride];
        _stripeMask = stripes - 1;
        _commandTags = [.. ReportedCommands.Select(c => new[] { new KeyValuePair<string, object?>("command", c.ToString().ToUpperInvariant()) })];
        _errorTags = [.. Enumerable.Range(0, ErrorCodes).Select(c => new[] { new KeyValuePair<string, object?>("code", Protocol.ErrorCodes.Name((ErrorCode)c)) })];

        Meter = meterFactory.Create(new MeterOptions(MeterName));
        Meter.CreateObservableUpDownCounter("tinyserver.connections.active", () => _tracker.Active, "{connection}", "Connections being served now");
        Meter.CreateObservableCounter("tinyserver.connections.accepted", () => _tracker.Accepted, "{connection}", "Connections accepted and served (under the connection limit)");
        Meter.CreateObservableCounter("tinyserver.connections.rejected", ObserveRejected, "{connection}", "Connections turned away before being served, by reason");
        Meter.CreateObservableCounter("tinyserver.commands", ObserveCommands, "{command}", "Requests answered with the command's own reply, by command (lines answered with an error are in tinyserver.errors)");
        Meter.CreateObservableCounter("tinyserver.errors", ObserveErrors, "{error}", "ERROR replies sent, by code");
        Meter.CreateObservableCounter("tinyserver.bytes.received", () => Sum(BytesInSlot), "By", "Request bytes received and processed");
        Meter.CreateObservableCounter("tinyserver.bytes.sent", () => Sum(BytesOutSlot), "By", "Reply bytes written (banners and errors included)");
        // Microseconds, not the seconds of OpenTelemetry's conventions: batches take tens of microseconds, and
        // dotnet-counters shows a few decimals only, so seconds would read 0.
        _batchDuration = Meter.CreateHistogram(
            "tinyserver.batch.duration",
            "us",
            "Per read that carried at least one complete line: from the read's completion to the flush of all its replies",
            tags: null,
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000] });
    }

    /// <summary>The meter; one per host (tests listen to their own server's only).</summary>
    public Meter Meter { get; }

    /// <summary>
    /// A connection was turned away: counted under <paramref name="reason"/> (see <see cref="RejectionReasons"/>). The
    /// PROXY protocol rejections are not reported here: they are read from the <see cref="ConnectionTracker"/>.
    /// </summary>
    public void Rejected(string reason) => Interlocked.Increment(ref Rejections(reason));

    /// <summary>Reports <paramref name="reason"/> from now on, at 0 until counted, so that a dashboard sees the series before the first rejection.</summary>
    public void ReportRejections(string reason) => Rejections(reason);

    private ref long Rejections(string reason) => ref _rejected.GetOrAdd(reason, static _ => new StrongBox<long>()).Value;

    /// <summary>The handler wrote the banner.</summary>
    public void BannerSent() => Interlocked.Add(ref Stripe(BytesOutSlot), BannerLength);

    /// <summary>The handler (not the session) wrote the error reply <paramref name="code"/>: idle timeout, shutdown, the connection limit.</summary>
    public void ErrorSent(ErrorCode code)
    {
        Interlocked.Increment(ref Stripe(ErrorSlot + (int)code));
        Interlocked.Add(ref Stripe(BytesOutSlot), Protocol.ErrorCodes.ReplyLine(code).Length);
    }

    /// <summary>A timestamp to pass to <see cref="OnBatch"/> when a read completes; 0 (nothing timed) while no listener wants the histogram.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public long BatchStarted() => _batchDuration.Enabled ? Stopwatch.GetTimestamp() : 0;

    /// <summary>
    /// Publishes what <paramref name="session"/> counted since <paramref name="published"/> was taken (it is updated),
    /// and records the batch duration when <paramref name="started"/> is not 0 and the batch answered a request.
    /// Allocates nothing. The connection handler takes <see cref="Published.Of"/> before each read's lines and publishes
    /// right after them (with 0: it records the duration after the flush, <see cref="BatchFlushed"/>), so that a
    /// connection keeps no copy of its counts while it waits.
    /// </summary>
    public void OnBatch(ServerSession session, ref Published published, long started)
    {
        long requests = session.Requests;
        if (requests != published.Requests)
        {
            if (started != 0)
            {
                _batchDuration.Record(Stopwatch.GetElapsedTime(started).TotalMicroseconds);
            }

            published.Requests = requests;
            for (int c = 0; c < CommandKinds; c++)
            {
                long now = session.Answered((Command)c);
                if (now != published.Commands[c])
                {
                    Interlocked.Add(ref Stripe(SlotOf((Command)c)), now - published.Commands[c]);
                    published.Commands[c] = now;
                }
            }
        }

        if (session.LinesTooLong != published.LinesTooLong)
        {
            Interlocked.Add(ref Stripe(ErrorSlot + (int)ErrorCode.LineTooLong), session.LinesTooLong - published.LinesTooLong);
            published.LinesTooLong = session.LinesTooLong;
        }

        if (session.BytesIn != published.BytesIn)
        {
            Interlocked.Add(ref Stripe(BytesInSlot), session.BytesIn - published.BytesIn);
            published.BytesIn = session.BytesIn;
        }

        if (session.BytesOut != published.BytesOut)
        {
            Interlocked.Add(ref Stripe(BytesOutSlot), session.BytesOut - published.BytesOut);
            published.BytesOut = session.BytesOut;
        }
    }

    /// <summary>
    /// Records the batch duration once a read's replies are flushed: <paramref name="started"/> from
    /// <see cref="BatchStarted"/>, or 0 (nothing recorded) when the read answered no request.
    /// </summary>
    public void BatchFlushed(long started)
    {
        if (started != 0)
        {
            _batchDuration.Record(Stopwatch.GetElapsedTime(started).TotalMicroseconds);
        }
    }

    private static int SlotOf(Command command) => command switch
    {
        Command.Unknown => ErrorSlot + (int)ErrorCode.UnknownCommand,
        Command.BadArguments => ErrorSlot + (int)ErrorCode.BadArguments,
        _ => CommandSlot + (int)command,
    };

    /// <summary>The current processor's copy of a slot.</summary>
    private ref long Stripe(int slot) =>
        ref _stripes[((Thread.GetCurrentProcessorId() & _stripeMask) * Stride) + Padding + slot];

    private long Sum(int slot)
    {
        long sum = 0;
        for (int i = Padding + slot; i < _stripes.Length; i += Stride)
        {
            sum += Volatile.Read(ref _stripes[i]);
        }

        return sum;
    }

    private IEnumerable<Measurement<long>> ObserveCommands()
    {
        for (int i = 0; i < ReportedCommands.Length; i++)
        {
            yield return new Measurement<long>(Sum(CommandSlot + (int)ReportedCommands[i]), _commandTags[i]);
        }
    }

    private IEnumerable<Measurement<long>> ObserveErrors()
    {
        for (int code = 0; code < ErrorCodes; code++)
        {
            yield return new Measurement<long>(Sum(ErrorSlot + code), _errorTags[code]);
        }
    }

    private IEnumerable<Measurement<long>> ObserveRejected()
    {
        // The connection limits are always reported, so that a dashboard sees the series before the first rejection.
        _rejected.GetOrAdd(RejectionReasons.MaxConnections, static _ => new StrongBox<long>());
        _rejected.GetOrAdd(RejectionReasons.MaxConnectionsPerAddress, static _ => new StrongBox<long>());
        foreach ((string reason, StrongBox<long> count) in _rejected)
        {
            yield return Rejection(reason, Interlocked.Read(ref count.Value));
        }

        foreach (ProxyRejection proxy in Enum.GetValues<ProxyRejection>())
        {
            yield return Rejection(RejectionReasons.Proxy(proxy), _tracker.ProxyRejected(proxy));
        }
    }

    private static Measurement<long> Rejection(string reason, long count) => new(count, new KeyValuePair<string, object?>("reason", reason));

    /// <summary>What a session had counted when it was last published.</summary>
    public struct Published
    {
        /// <summary>What <paramref name="session"/> has counted so far.</summary>
        public static Published Of(ServerSession session)
        {
            var counts = new Published
            {
                Requests = session.Requests,
                LinesTooLong = session.LinesTooLong,
                BytesIn = session.BytesIn,
                BytesOut = session.BytesOut,
            };
            for (int c = 0; c < CommandKinds; c++)
            {
                counts.Commands[c] = session.Answered((Command)c);
            }

            return counts;
        }

        internal long Requests;
        internal long LinesTooLong;
        internal long BytesIn;
        internal long BytesOut;
        internal CommandCounts Commands;
    }

    [InlineArray(CommandKinds)]
    internal struct CommandCounts
    {
        private long _first;
    }
}
