using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using TinyServer.Server;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Endpoints;

/// <summary>
/// The threads that run TLS handshakes (<see cref="HandshakeThreads"/>): at idle CPU priority, with one thread of
/// normal priority for a handshake that has waited too long for idle CPU. The storm test shows what it is for.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
[Trait("Tier", "process")] // Real threads, and a real 200 ms wait for the late thread.
public sealed class HandshakeThreadsTests
{
    private const int SchedOther = 0;
    private const int SchedIdle = 5;

    [Fact]
    public async Task What_follows_Enter_runs_on_a_handshake_thread_at_idle_priority()
    {
        // A long idle wait: on a busy machine the idle threads may not run within 100 ms, and the late thread would.
        using var threads = new HandshakeThreads(2, Timeouts.Read, TimeProvider.System, NullLogger.Instance);
        (string? name, int policy) = await RunAsync(threads).WaitAsync(Timeouts.Process);
        Assert.Equal("TLS handshakes", name);
        Assert.Equal(SchedIdle, policy);

        static async Task<(string?, int)> RunAsync(HandshakeThreads threads)
        {
            await threads.Enter();
            return (Thread.CurrentThread.Name, CurrentPolicy());
        }
    }

    [Fact]
    public async Task A_handshake_that_waits_the_idle_wait_runs_at_normal_priority()
    {
        var wait = TimeSpan.FromMilliseconds(200);
        using var threads = new HandshakeThreads(1, wait, TimeProvider.System, NullLogger.Instance);
        using var busy = new ManualResetEventSlim();
        try
        {
            // The one idle thread is taken (as a CPU busy with requests would keep it from running): the next
            // handshake waits the idle wait, then the normal thread runs it.
            var first = new TaskCompletionSource<(string?, int, TimeSpan)>(TaskCreationOptions.RunContinuationsAsynchronously);
            var clock = Stopwatch.StartNew();
            threads.Queue(() =>
            {
                first.SetResult((Thread.CurrentThread.Name, CurrentPolicy(), clock.Elapsed));
                busy.Wait(Timeouts.Process);
            });
            (string? name, int policy, TimeSpan waited) = await first.Task.WaitAsync(Timeouts.Read);
            if (name != "TLS late handshakes")
            {
                var late = new TaskCompletionSource<(string?, int, TimeSpan)>(TaskCreationOptions.RunContinuationsAsynchronously);
                clock.Restart();
                threads.Queue(() => late.SetResult((Thread.CurrentThread.Name, CurrentPolicy(), clock.Elapsed)));
                (name, policy, waited) = await late.Task.WaitAsync(Timeouts.Read);
            }

            // Else the machine was so busy (clean-clone CI, the suite starting) that the idle thread got no CPU within
            // the idle wait: the first handshake itself went to the normal thread, late, which is what is tested.
            Assert.Equal("TLS late handshakes", name);
            Assert.Equal(SchedOther, policy);
            Assert.True(waited >= wait, $"ran after {waited.TotalMilliseconds} ms, before the idle wait");
        }
        finally
        {
            busy.Set();
        }
    }

    [Fact]
    public async Task The_normal_thread_runs_every_late_handshake_whether_it_was_waiting_for_a_deadline_or_for_work()
    {
        // No idle thread: every handshake waits the idle wait, then the normal thread runs it. That thread is woken only
        // when it waits for work (the queue was empty); a handshake queued while it waits for an earlier one's deadline
        // does not wake it, and runs when it looks at the queue again.
        var wait = TimeSpan.FromMilliseconds(200);
        using var threads = new HandshakeThreads(0, wait, TimeProvider.System, NullLogger.Instance);
        await AssertLateAsync(Queue(threads)); // The normal thread waited for work.
        await AssertLateAsync(Queue(threads)); // Again, after a first late handshake.
        Task<(string?, TimeSpan)> first = Queue(threads);
        await Task.Delay(50);
        Task<(string?, TimeSpan)> second = Queue(threads); // Queued while the thread waits for the first one's deadline.
        await AssertLateAsync(first);
        await AssertLateAsync(second);

        async Task AssertLateAsync(Task<(string?, TimeSpan)> ran)
        {
            (string? name, TimeSpan waited) = await ran.WaitAsync(Timeouts.Read);
            Assert.Equal("TLS late handshakes", name);
            Assert.True(waited >= wait, $"ran after {waited.TotalMilliseconds} ms, before the idle wait");
        }

        static Task<(string?, TimeSpan)> Queue(HandshakeThreads threads)
        {
            var ran = new TaskCompletionSource<(string?, TimeSpan)>(TaskCreationOptions.RunContinuationsAsynchronously);
            var clock = Stopwatch.StartNew();
            threads.Queue(() => ran.SetResult((Thread.CurrentThread.Name, clock.Elapsed)));
            return ran.Task;
        }
    }

    [Fact]
    public async Task An_idle_wait_of_0_runs_every_handshake_at_normal_priority()
    {
        using var threads = new HandshakeThreads(2, TimeSpan.Zero, TimeProvider.System, NullLogger.Instance);
        for (int i = 0; i < 3; i++)
        {
            var ran = new TaskCompletionSource<(string?, int)>(TaskCreationOptions.RunContinuationsAsynchronously);
            threads.Queue(() => ran.SetResult((Thread.CurrentThread.Name, CurrentPolicy())));
            Assert.Equal(("TLS late handshakes", SchedOther), await ran.Task.WaitAsync(Timeouts.Read));
        }
    }

    [Fact]
    public async Task After_dispose_the_queued_work_still_runs_and_later_work_runs_on_the_thread_pool()
    {
        var threads = new HandshakeThreads(1, TimeSpan.FromMilliseconds(100), TimeProvider.System, NullLogger.Instance);
        var queued = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        threads.Queue(queued.SetResult);
        threads.Dispose();
        var later = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        threads.Queue(() => later.SetResult(Thread.CurrentThread.IsThreadPoolThread));
        await queued.Task.WaitAsync(Timeouts.Read);
        Assert.True(await later.Task.WaitAsync(Timeouts.Read));
    }

    [Theory]
    [InlineData(0, false)]
    [InlineData(1, true)]
    [InlineData(2, true)]
    [InlineData(255, true)]
    [InlineData(256, true)]
    [InlineData(257, false)]
    public void The_handshake_threads_are_1_to_256(int count, bool accepted) =>
        Check("--tls-handshake-threads", count, accepted, options => options.TlsHandshakeThreads);

    [Theory]
    [InlineData(-1, false)]
    [InlineData(0, true)]
    [InlineData(1, true)]
    [InlineData(9_999, true)]
    [InlineData(10_000, true)]
    [InlineData(10_001, false)]
    public void The_handshake_idle_wait_is_0_to_10000_milliseconds(int milliseconds, bool accepted) =>
        Check("--tls-handshake-idle-wait", milliseconds, accepted, options => options.TlsHandshakeIdleWaitMs);

    [Fact]
    public void The_defaults_are_one_thread_a_core_and_100_milliseconds()
    {
        ServerOptions options = ServerOptionsLoader.Load([], new Dictionary<string, string>(), settingsFile: null)!;
        Assert.Equal(Environment.ProcessorCount, options.TlsHandshakeThreads);
        Assert.Equal(100, options.TlsHandshakeIdleWaitMs);
    }

    private static void Check(string option, int value, bool accepted, Func<ServerOptions, int> read)
    {
        string[] args = [option, value.ToString(CultureInfo.InvariantCulture)];
        if (accepted)
        {
            Assert.Equal(value, read(ServerOptionsLoader.Load(args, new Dictionary<string, string>(), settingsFile: null)!));
        }
        else
        {
            OptionsException error = Assert.Throws<OptionsException>(() => ServerOptionsLoader.Load(args, new Dictionary<string, string>(), settingsFile: null));
            Assert.Contains(option, error.Message, StringComparison.Ordinal);
        }
    }

    /// <summary>The calling thread's scheduling policy, as /proc shows it.</summary>
    private static int CurrentPolicy() =>
        int.Parse(File.ReadAllLines("/proc/thread-self/sched").Single(line => line.StartsWith("policy", StringComparison.Ordinal)).Split(':')[1].Trim(), CultureInfo.InvariantCulture);
}
