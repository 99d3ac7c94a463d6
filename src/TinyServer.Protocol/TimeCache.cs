using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace TinyServer.Protocol;

/// <summary>
/// The TIME reply's timestamp, formatted once per second: reading the clock is cheap, converting it to local time and
/// formatting it are not, and the text changes only when the second does (so do UTC offsets, at whole seconds).
/// </summary>
public struct TimeCache
{
    private long _second; // UTC seconds since 0001-01-01 of the cached text; 0: nothing cached yet.
    private Timestamp _text;

    /// <summary>The local time now as <c>yyyy-MM-ddTHH:mm:ss+hh:mm</c>.</summary>
    [UnscopedRef]
    public ReadOnlySpan<byte> Now(TimeProvider time)
    {
        DateTimeOffset utc = time.GetUtcNow();
        long second = utc.UtcTicks / TimeSpan.TicksPerSecond;
        if (second != _second)
        {
            ReplyWriter.FormatTimestamp(TimeZoneInfo.ConvertTime(utc, time.LocalTimeZone), _text);
            _second = second;
        }

        return _text;
    }

    [InlineArray(ReplyWriter.TimestampLength)]
    private struct Timestamp
    {
        private byte _first;
    }
}
