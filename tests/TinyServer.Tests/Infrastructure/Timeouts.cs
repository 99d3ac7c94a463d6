namespace TinyServer.Tests.Infrastructure;

/// <summary>Every await in a socket or process test is bounded by one of these.</summary>
public static class Timeouts
{
    /// <summary>Long enough for a loaded CI machine, short enough that a hang fails fast.</summary>
    public static readonly TimeSpan Read = TimeSpan.FromSeconds(15);

    /// <summary>For a whole external process (nc, socat, expect, the client).</summary>
    public static readonly TimeSpan Process = TimeSpan.FromSeconds(60);
}
