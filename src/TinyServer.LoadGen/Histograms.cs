using HdrHistogram;

namespace TinyServer.LoadGen;

/// <summary>The latency histograms of a run: HdrHistogram, in nanoseconds.</summary>
internal static class Histograms
{
    /// <summary>Two hours: more than the longest run, so a latency measured from an intended send time fits too.</summary>
    public const long HighestNanoseconds = 2L * 3600 * 1_000_000_000;

    /// <summary>Three significant digits: 0.1% resolution at any latency.</summary>
    public const int SignificantDigits = 3;

    public static LongHistogram New() => new(1, HighestNanoseconds, SignificantDigits);
}
