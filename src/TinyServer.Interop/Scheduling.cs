using System.Runtime.InteropServices;

namespace TinyServer.Interop;

/// <summary>The calling thread's CPU scheduling policy (Linux).</summary>
internal static partial class Scheduling
{
    private const int SchedIdle = 5;

    /// <summary>
    /// Puts the calling thread under SCHED_IDLE: it runs only when no other thread wants the CPU, and any waking
    /// thread of normal priority preempts it at once (nice 19 does not: the scheduler lets it finish its time slice).
    /// An unprivileged thread cannot return to normal priority. Returns 0, or the errno of the failure.
    /// </summary>
    public static int MakeCurrentThreadIdle()
    {
        int priority = 0; // struct sched_param { int sched_priority; }: 0 for SCHED_IDLE.
        return sched_setscheduler(0, SchedIdle, ref priority) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int sched_setscheduler(int pid, int policy, ref int param);
}
