using System.Runtime.InteropServices;

namespace TinyServer.Server;

/// <summary>Raises the soft limit on open files (RLIMIT_NOFILE) to the hard limit: one descriptor per connection.</summary>
internal static partial class FileDescriptorLimit
{
    /// <summary>Descriptors kept for the runtime, listeners and logs rather than connections.</summary>
    public const int Reserved = 64;

    private const int RlimitNofile = 7; // Linux, every architecture .NET runs on.

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current;
        public ulong Maximum;
    }

    [LibraryImport("libc", EntryPoint = "getrlimit", SetLastError = true)]
    private static partial int GetRLimit(int resource, out RLimit limit);

    [LibraryImport("libc", EntryPoint = "setrlimit", SetLastError = true)]
    private static partial int SetRLimit(int resource, in RLimit limit);

    /// <summary>Raises the soft limit as far as allowed; returns the limit now in force, or null where unknown.</summary>
    public static long? Raise()
    {
        if (!OperatingSystem.IsLinux() || GetRLimit(RlimitNofile, out RLimit limit) != 0)
        {
            return null;
        }

        if (limit.Current < limit.Maximum)
        {
            var raised = new RLimit { Current = limit.Maximum, Maximum = limit.Maximum };
            if (SetRLimit(RlimitNofile, raised) == 0)
            {
                limit = raised;
            }
        }

        return (long)Math.Min(limit.Current, long.MaxValue);
    }
}
