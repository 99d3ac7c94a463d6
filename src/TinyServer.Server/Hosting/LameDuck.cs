using System.Diagnostics.Metrics;
using System.Runtime.InteropServices;

namespace TinyServer.Server;

/// <summary>Where a server is in its life, as <c>/readyz</c> and <c>tinyserver.drain.phase</c> report it.</summary>
public enum DrainPhase
{
    /// <summary>Not listening yet: not ready.</summary>
    Starting = -1,

    /// <summary>Listening and serving: ready.</summary>
    Serving = 0,

    /// <summary>Stopping: not ready, but still accepting and serving for <see cref="ServerOptions.DrainDelaySeconds"/>.</summary>
    LameDuck = 1,

    /// <summary>Not accepting; each connection gets the answers to what it sent, then <c>ERROR SHUTTING_DOWN</c>.</summary>
    Draining = 2,
}

/// <summary>
/// The lame-duck stop. On SIGTERM (or SIGINT, or any other stop of the host) the server turns not-ready at once, keeps
/// accepting and serving for <see cref="ServerOptions.DrainDelaySeconds"/>, and only then lets Kestrel stop the
/// listeners and drain the connections (each ends at its next request boundary with <c>ERROR SHUTTING_DOWN</c>) for
/// up to <see cref="ServerOptions.ShutdownTimeoutSeconds"/>. A second SIGTERM or SIGINT cuts the delay short.
/// </summary>
/// <remarks>
/// The delay holds the host's stop in <see cref="StoppingAsync"/>: the host calls every
/// <see cref="IHostedLifecycleService.StoppingAsync"/> before any <see cref="IHostedService.StopAsync"/>, Kestrel's
/// (GenericWebHostService, which closes the listeners) included. The host's shutdown timeout is the delay plus the
/// shutdown timeout (<see cref="TinyServerHost"/>), so the drain after the delay gets at least
/// <see cref="ServerOptions.ShutdownTimeoutSeconds"/>, and the process exits within the sum of the two after the first
/// signal. With no delay nothing waits and nothing more is logged: the stop is exactly the one without this class.
/// </remarks>
public sealed class LameDuck : IHostedLifecycleService, IDisposable
{
    private readonly ServerOptions _options;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ConnectionTracker _tracker;
    private readonly TimeProvider _time;
    private readonly ILogger<LameDuck> _logger;
    private readonly CancellationTokenSource _cutShort = new();
    private readonly List<PosixSignalRegistration> _signals = [];
    private int _phase = (int)DrainPhase.Starting;
    private int _signalsSeen;
    private long _stoppingAt;
    private long _acceptedAtStop;
    private long _acceptedInDelay;
    private CancellationTokenRegistration _onStopping;

    public LameDuck(ServerOptions options, IHostApplicationLifetime lifetime, ConnectionTracker tracker, ServerMetrics metrics, TimeProvider time, ILogger<LameDuck> logger)
    {
        _options = options;
        _lifetime = lifetime;
        _tracker = tracker;
        _time = time;
        _logger = logger;

        // In the TinyServer meter, beside ServerMetrics' own instruments.
        metrics.Meter.CreateObservableGauge("tinyserver.drain.phase", () => (long)Math.Max(0, (int)Phase), "{phase}",
            "0 serving (ready), 1 lame duck (stopping: not ready, still accepting for --drain-delay), 2 draining (not accepting; connections end at their next request boundary)");
        metrics.Meter.CreateObservableCounter("tinyserver.drain.connections", ObserveDrain, "{connection}",
            "Connections of the stop, by outcome: accepted during the drain delay, drained (closed after ERROR SHUTTING_DOWN), aborted at the shutdown timeout");
    }

    public DrainPhase Phase => (DrainPhase)Volatile.Read(ref _phase);

    /// <summary>Listening and not stopping: what <c>/readyz</c> answers 200 to.</summary>
    public bool Ready => Phase == DrainPhase.Serving;

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        // SIGTERM reaches the host lifetime (ConsoleLifetime, SystemdLifetime), which triggers ApplicationStopping at
        // once, before the host gets to StoppingAsync: not-ready from that moment.
        _onStopping = _lifetime.ApplicationStopping.Register(static state => ((LameDuck)state!).TurnLameDuck(), this);
        if (_options.DrainDelaySeconds > 0 && !OperatingSystem.IsWindows())
        {
            foreach (PosixSignal signal in new[] { PosixSignal.SIGTERM, PosixSignal.SIGINT })
            {
                _signals.Add(PosixSignalRegistration.Create(signal, OnSignal));
            }
        }

        return Task.CompletedTask;
    }

    public Task StartedAsync(CancellationToken cancellationToken)
    {
        Interlocked.CompareExchange(ref _phase, (int)DrainPhase.Serving, (int)DrainPhase.Starting);
        return Task.CompletedTask;
    }

    /// <summary>Phase 1, the lame duck: not ready, still accepting, for the drain delay. Then phase 2 begins.</summary>
    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        TurnLameDuck();
        string how = "over";
        if (_options.DrainDelaySeconds > 0)
        {
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(_cutShort.Token, cancellationToken);
            TimeSpan left = TimeSpan.FromSeconds(_options.DrainDelaySeconds) - _time.GetElapsedTime(Volatile.Read(ref _stoppingAt));
            try
            {
                if (left > TimeSpan.Zero)
                {
                    await Task.Delay(left, _time, wait.Token).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException)
            {
                how = _cutShort.IsCancellationRequested ? "cut short by a second signal" : "cut short by the host"; // On to the drain.
            }
        }

        Interlocked.Exchange(ref _acceptedInDelay, _tracker.Accepted - Interlocked.Read(ref _acceptedAtStop));
        Volatile.Write(ref _phase, (int)DrainPhase.Draining);
        if (_options.DrainDelaySeconds == 0)
        {
            return; // No lame duck: the stop logs only its end (Program's "Stopped after ..."), as without this class.
        }

        Log.DrainStarted(_logger, (long)_time.GetElapsedTime(Volatile.Read(ref _stoppingAt)).TotalMilliseconds, how,
            Interlocked.Read(ref _acceptedInDelay), _tracker.Open, _options.ShutdownTimeoutSeconds);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken)
    {
        DisposeSignals();
        return Task.CompletedTask;
    }

    public void Dispose()
    {
        DisposeSignals();
        _onStopping.Dispose();
        _cutShort.Dispose();
    }

    /// <summary>Once, whichever comes first: ApplicationStopping (a signal) or the host's StoppingAsync (StopAsync called directly).</summary>
    private void TurnLameDuck()
    {
        lock (_cutShort)
        {
            if (Phase >= DrainPhase.LameDuck)
            {
                return;
            }

            _stoppingAt = _time.GetTimestamp();
            Interlocked.Exchange(ref _acceptedAtStop, _tracker.Accepted);
            Volatile.Write(ref _phase, (int)DrainPhase.LameDuck);
        }

        if (_options.DrainDelaySeconds > 0)
        {
            Log.LameDuck(_logger, _options.DrainDelaySeconds, _tracker.Open);
        }
    }

    /// <summary>SIGTERM or SIGINT: the first starts the stop (the host lifetime acts on it); any later one ends the delay.</summary>
    private void OnSignal(PosixSignalContext context)
    {
        if (Interlocked.Increment(ref _signalsSeen) > 1)
        {
            try
            {
                _cutShort.Cancel();
            }
            catch (ObjectDisposedException)
            {
                // Already stopped.
            }
        }
    }

    private void DisposeSignals()
    {
        lock (_signals)
        {
            _signals.ForEach(signal => signal.Dispose());
            _signals.Clear();
        }
    }

    private IEnumerable<Measurement<long>> ObserveDrain()
    {
        long inDelay = Phase == DrainPhase.LameDuck ? _tracker.Accepted - Interlocked.Read(ref _acceptedAtStop) : Interlocked.Read(ref _acceptedInDelay);
        yield return new Measurement<long>(inDelay, new KeyValuePair<string, object?>("outcome", "accepted_during_delay"));
        yield return new Measurement<long>(_tracker.Drained, new KeyValuePair<string, object?>("outcome", "drained"));
        yield return new Measurement<long>(_tracker.Aborted, new KeyValuePair<string, object?>("outcome", "aborted"));
    }
}

/// <summary>The stop's phases, one line each (never one per connection).</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 50, Level = LogLevel.Information, Message = "Stopping: not ready from now on; still accepting for {DrainDelaySeconds} s (--drain-delay), {Open} connections open")]
    public static partial void LameDuck(ILogger logger, int drainDelaySeconds, long open);

    [LoggerMessage(EventId = 51, Level = LogLevel.Information, Message = "Drain delay {How} after {ElapsedMs} ms, {AcceptedInDelay} connections accepted during it: no longer accepting; {Open} connections end at their next request boundary with ERROR SHUTTING_DOWN, within {ShutdownTimeoutSeconds} s")]
    public static partial void DrainStarted(ILogger logger, long elapsedMs, string how, long acceptedInDelay, long open, int shutdownTimeoutSeconds);

    [LoggerMessage(EventId = 8, Level = LogLevel.Information, Message = "Health endpoints on {Url}/healthz and /readyz")]
    public static partial void HealthListening(ILogger logger, string url);
}
