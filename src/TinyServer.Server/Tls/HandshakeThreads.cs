using System.Runtime.CompilerServices;
using TinyServer.Interop;

namespace TinyServer.Server;

/// <summary>
/// Where TLS handshakes and closes run: threads of their own at idle CPU priority (SCHED_IDLE), so that a burst of
/// handshakes (a signature and a key exchange each, about a millisecond of CPU) never delays the event threads and
/// the requests they serve. An event thread that wakes takes the CPU from a handshake at once; the handshake goes on
/// when the CPU is free. On 2 cores, a storm of 200 handshakes a second at normal priority, even in another process,
/// took an established load's p99 from about 330 µs to over 1 ms; at idle priority it stays where it was.
/// <para>
/// A CPU busy with requests would starve handshakes for ever: a handshake that has waited
/// <see cref="ServerOptions.TlsHandshakeIdleWaitMs"/> is run by one thread of normal priority instead. A saturated
/// server so still completes new handshakes, about one core's worth at most, each late by that wait.
/// </para>
/// A wait of 0 runs every handshake on that normal thread alone. Where SCHED_IDLE is refused (not Linux, a seccomp
/// filter), the idle threads run at normal priority, and say so once in the log.
/// </summary>
public sealed class HandshakeThreads : IDisposable
{
    private readonly Queue<(Action Work, long Queued)> _queue = new();
    // The queue's lock, and what the idle threads wait on (Monitor.Wait). Not a SemaphoreSlim: its Wait spins about
    // 140 rounds of sched_yield before it sleeps, which between two idle threads was a context switch every 60 µs.
    private readonly object _lock = new();
    private readonly AutoResetEvent _rescue = new(false);
    private readonly TimeProvider _time;
    private readonly TimeSpan _idleWait;
    private readonly Thread[] _threads;
    private volatile bool _stopping;

    /// <summary>The normal thread waits with no deadline (the queue was empty): the next handshake queued must wake it.</summary>
    private bool _lateParked;

    /// <summary>Idle threads waiting for work: a handshake queued wakes one only if one sleeps.</summary>
    private int _sleeping;

    public HandshakeThreads(ServerOptions options, TimeProvider time, ILogger<HandshakeThreads> logger)
        : this(options.TlsHandshakeThreads, TimeSpan.FromMilliseconds(options.TlsHandshakeIdleWaitMs), time, logger)
    {
    }

    internal HandshakeThreads(int idleThreads, TimeSpan idleWait, TimeProvider time, ILogger logger)
    {
        _time = time;
        _idleWait = idleWait;
        int idle = idleWait > TimeSpan.Zero ? idleThreads : 0;
        int refused = 0;
        _threads = new Thread[idle + 1];
        for (int i = 0; i < idle; i++)
        {
            _threads[i] = new Thread(() =>
            {
                int error = OperatingSystem.IsLinux() ? Scheduling.MakeCurrentThreadIdle() : -1;
                if (error != 0 && Interlocked.Increment(ref refused) == 1)
                {
                    Log.HandshakePriorityRefused(logger, error);
                }

                RunIdle();
            }) { IsBackground = true, Name = "TLS handshakes" };
        }

        _threads[idle] = new Thread(RunLate) { IsBackground = true, Name = "TLS late handshakes" };
        foreach (Thread thread in _threads)
        {
            thread.Start();
        }
    }

    /// <summary><c>await threads.Enter()</c>: what follows runs on one of these threads.</summary>
    public Awaitable Enter() => new(this);

    /// <summary>Runs <paramref name="work"/> on one of these threads.</summary>
    public void Queue(Action work)
    {
        if (_stopping)
        {
            ThreadPool.UnsafeQueueUserWorkItem(static work => work(), work, preferLocal: false);
            return;
        }

        bool wakeLate;
        lock (_lock)
        {
            wakeLate = _lateParked;
            _lateParked = false;
            _queue.Enqueue((work, _time.GetTimestamp()));
            if (_sleeping > 0)
            {
                Monitor.Pulse(_lock);
            }
        }

        if (wakeLate)
        {
            // The normal thread learns when the oldest handshake becomes late. Not on every handshake: while it waits
            // for a deadline it looks at the queue again then, so a steady stream of handshakes wakes it about twice
            // per idle wait instead of once (a context switch) per handshake.
            _rescue.Set();
        }
    }

    /// <summary>The threads finish what is queued, then end; what comes later runs on the thread pool.</summary>
    public void Dispose()
    {
        _stopping = true;
        lock (_lock)
        {
            Monitor.PulseAll(_lock);
        }

        _rescue.Set();
    }

    /// <summary>An idle thread: the next handshake, whenever the CPU has room for it.</summary>
    private void RunIdle()
    {
        while (true)
        {
            Action work;
            lock (_lock)
            {
                while (true)
                {
                    if (_queue.TryDequeue(out var next))
                    {
                        work = next.Work;
                        break;
                    }

                    if (_stopping)
                    {
                        return;
                    }

                    _sleeping++;
                    Monitor.Wait(_lock);
                    _sleeping--;
                }
            }

            work();
        }
    }

    /// <summary>The normal thread: a handshake that has waited the idle wait (all of them when it is 0).</summary>
    private void RunLate()
    {
        while (true)
        {
            Action? work = null;
            TimeSpan wait = Timeout.InfiniteTimeSpan;
            lock (_lock)
            {
                if (_queue.TryPeek(out var oldest))
                {
                    TimeSpan waited = _time.GetElapsedTime(oldest.Queued);
                    if (waited >= _idleWait)
                    {
                        work = _queue.Dequeue().Work;
                    }
                    else
                    {
                        wait = _idleWait - waited;
                    }
                }
                else if (_stopping)
                {
                    return;
                }
                else
                {
                    _lateParked = true;
                }
            }

            if (work is not null)
            {
                work();
            }
            else
            {
                _rescue.WaitOne(wait);
            }
        }
    }

    /// <summary>Awaiting it moves the rest of the method onto a handshake thread.</summary>
    public readonly struct Awaitable(HandshakeThreads threads) : ICriticalNotifyCompletion
    {
        public bool IsCompleted => false;

        public Awaitable GetAwaiter() => this;

        public void GetResult()
        {
        }

        public void OnCompleted(Action continuation)
        {
            ExecutionContext? context = ExecutionContext.Capture();
            threads.Queue(context is null ? continuation : () => ExecutionContext.Run(context, static state => ((Action)state!)(), continuation));
        }

        public void UnsafeOnCompleted(Action continuation) => threads.Queue(continuation);
    }
}
