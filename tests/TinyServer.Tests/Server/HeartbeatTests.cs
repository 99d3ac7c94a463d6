using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using TinyServer.Server;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Server;

/// <summary>
/// The heartbeat of the served connections' idle clocks (<see cref="ConnectionTracker.StartBeating"/>): one timer for
/// all of them, a table slot each; a clock that throws is logged and the others are beaten on.
/// </summary>
[Trait("Tier", "unit")]
public class HeartbeatTests
{
    [Fact]
    public async Task Registered_clocks_are_beaten_until_they_stop_and_a_failing_one_does_not_stop_the_others()
    {
        var logs = new ConcurrentQueue<(LogLevel Level, EventId Id, Exception? Exception)>();
        using var loggers = LoggerFactory.Create(logging => logging.AddProvider(new ListProvider(logs)));
        using var tracker = new ConnectionTracker(new ServerOptions(), loggers.CreateLogger<ConnectionTracker>());
        var clocks = Enumerable.Range(0, 100).Select(_ => new Clock()).ToArray(); // More than the table's first 64 slots.
        int[] slots = [.. clocks.Select(tracker.StartBeating)];
        var failing = new Clock { Throws = true };
        tracker.StartBeating(failing);

        using (var deadline = new CancellationTokenSource(Timeouts.Read))
        {
            while (clocks.Any(c => c.Beats < 2))
            {
                await Task.Delay(50, deadline.Token);
            }
        }

        // Every other clock stops; its slot goes to a new clock, beaten from then on.
        for (int i = 0; i < clocks.Length; i += 2)
        {
            tracker.StopBeating(slots[i]);
        }

        var late = new Clock();
        tracker.StartBeating(late);
        int[] stopped = [.. clocks.Where((_, i) => i % 2 == 0).Select(c => c.Beats)];
        int failed = failing.Beats;
        using (var deadline = new CancellationTokenSource(Timeouts.Read))
        {
            while (late.Beats < 2 || clocks.Where((_, i) => i % 2 == 1).Any(c => c.Beats < stopped.Max() + 2))
            {
                await Task.Delay(50, deadline.Token);
            }
        }

        // A beat under way when a clock stopped may still reach it: one more at most.
        Assert.All(clocks.Where((_, i) => i % 2 == 0).Zip(stopped), p => Assert.InRange(p.First.Beats, p.Second, p.Second + 1));
        Assert.True(failing.Beats > failed);
        Assert.NotEmpty(logs);
        Assert.All(logs, log => Assert.Equal((LogLevel.Error, 15, "provoked"), (log.Level, log.Id.Id, log.Exception?.Message)));
    }

    [Fact]
    public void Without_the_timer_only_Beat_beats()
    {
        using var tracker = new ConnectionTracker(new ServerOptions()) { BeatEverySecond = false };
        var clock = new Clock();
        tracker.StartBeating(clock);
        tracker.Beat();
        tracker.Beat();
        Assert.Equal(2, clock.Beats);
    }

    private sealed class Clock : IHeartbeat
    {
        private int _beats;

        public bool Throws { get; init; }

        public int Beats => Volatile.Read(ref _beats);

        public void OnHeartbeat()
        {
            Interlocked.Increment(ref _beats);
            if (Throws)
            {
                throw new InvalidOperationException("provoked");
            }
        }
    }

    private sealed class ListProvider(ConcurrentQueue<(LogLevel Level, EventId Id, Exception? Exception)> entries) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new ListLogger(entries);

        public void Dispose()
        {
        }

        private sealed class ListLogger(ConcurrentQueue<(LogLevel Level, EventId Id, Exception? Exception)> entries) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                entries.Enqueue((logLevel, eventId, exception));
        }
    }
}
