using System.Diagnostics;

namespace TinyServer.LoadGen;

/// <summary>The one time base of a run: <see cref="Stopwatch"/> ticks, converted at the edges.</summary>
internal static class Clock
{
    private static readonly double NanosecondsPerTick = 1e9 / Stopwatch.Frequency;

    public static long Now => Stopwatch.GetTimestamp();

    public static long FromSeconds(double seconds) => (long)(seconds * Stopwatch.Frequency);

    public static double ToSeconds(long ticks) => ticks / (double)Stopwatch.Frequency;

    public static long ToNanoseconds(long ticks) => (long)(ticks * NanosecondsPerTick);
}
