namespace TinyServer.LoadGen.Tests.Infrastructure;

/// <summary>Every await in these tests is bounded by one of these.</summary>
public static class Timeouts
{
    /// <summary>For one socket operation, or starting and stopping a server: long enough for a loaded CI machine.</summary>
    public static readonly TimeSpan Io = TimeSpan.FromSeconds(15);

    /// <summary>For a whole load generator run (each is one or two seconds long).</summary>
    public static readonly TimeSpan Run = TimeSpan.FromSeconds(30);
}
