using System.Runtime.InteropServices;

namespace TinyServer.Server;

/// <summary>
/// The open-file limit (RLIMIT_NOFILE) and how many connections it leaves room for. Each connection is one
/// descriptor; the runtime needs descriptors too (it keeps every loaded assembly open, and starting a thread can
/// need one), and a .NET process that cannot get one when it must start a thread aborts. So the server never
/// lets connections take the last <see cref="Reserve"/> descriptors: past that it stops accepting, and new
/// connections wait in the listen backlog until others leave.
/// </summary>
public sealed partial class FileDescriptorLimit
{
    /// <summary>Descriptors kept free for the runtime, the listeners and the logs.</summary>
    public const int Reserve = 64;

    private const int RlimitNofile = 7; // Linux, every architecture .NET runs on.

    private readonly int _baseline = OperatingSystem.IsLinux() ? Directory.GetFiles("/proc/self/fd").Length : 0;

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current;
        public ulong Maximum;
    }

    /// <summary>The soft limit now in force (it can change while the server runs), or null where unknown.</summary>
    public static long? Current => OperatingSystem.IsLinux() && GetRLimit(RlimitNofile, out RLimit limit) == 0
        ? (long)Math.Min(limit.Current, long.MaxValue)
        : null;

    /// <summary>How many connections the limit leaves room for, beyond what the process had open at startup.</summary>
    public long? Capacity => Current is long limit ? limit - _baseline - Reserve : null;

    /// <summary>True when one more connection still leaves the reserve free.</summary>
    public bool HasRoomFor(long activeConnections) => Capacity is not long capacity || activeConnections < capacity;

    /// <summary>Raises the soft limit to the hard limit, as far as allowed.</summary>
    public static void Raise()
    {
        if (OperatingSystem.IsLinux() && GetRLimit(RlimitNofile, out RLimit limit) == 0 && limit.Current < limit.Maximum)
        {
            _ = SetRLimit(RlimitNofile, new RLimit { Current = limit.Maximum, Maximum = limit.Maximum });
        }
    }

    [LibraryImport("libc", EntryPoint = "getrlimit", SetLastError = true)]
    private static partial int GetRLimit(int resource, out RLimit limit);

    [LibraryImport("libc", EntryPoint = "setrlimit", SetLastError = true)]
    private static partial int SetRLimit(int resource, in RLimit limit);
}
