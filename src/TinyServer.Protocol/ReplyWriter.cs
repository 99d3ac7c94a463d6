using System.Buffers;

namespace TinyServer.Protocol;

/// <summary>
/// The server side of the reply lines of protocol.md: writes them. Nothing here allocates: every write goes straight
/// into the output buffer. A client reads them with <see cref="ReplyReader"/>.
/// </summary>
public static class ReplyWriter
{
    /// <summary>Length of <c>TIME yyyy-MM-ddTHH:mm:ss+hh:mm\n</c>.</summary>
    public const int TimeLineLength = 31;

    /// <summary>Length of <c>yyyy-MM-ddTHH:mm:ss+hh:mm</c>.</summary>
    public const int TimestampLength = 25;

    // Every Write method returns the number of bytes it wrote.
    public static int WriteBanner(IBufferWriter<byte> output) => WriteFixed(output, Wire.Banner);

    public static int WriteHelp(IBufferWriter<byte> output) => WriteFixed(output, Wire.Help);

    public static int WriteBye(IBufferWriter<byte> output) => WriteFixed(output, Wire.Bye);

    public static int WriteError(IBufferWriter<byte> output, ErrorCode code) => WriteFixed(output, ErrorCodes.ReplyLine(code));

    /// <summary><c>TIME 2025-09-12T17:24:13-05:00</c>: ISO 8601 to the second with a numeric UTC offset.</summary>
    public static int WriteTime(IBufferWriter<byte> output, DateTimeOffset now)
    {
        Span<byte> timestamp = stackalloc byte[TimestampLength];
        FormatTimestamp(now, timestamp);
        return WriteTime(output, timestamp);
    }

    /// <summary><c>TIME</c> with a timestamp already formatted (see <see cref="TimeCache"/>).</summary>
    public static int WriteTime(IBufferWriter<byte> output, ReadOnlySpan<byte> timestamp)
    {
        Span<byte> span = output.GetSpan(TimeLineLength);
        Wire.TimePrefix.CopyTo(span);
        timestamp[..TimestampLength].CopyTo(span[Wire.TimePrefix.Length..]);
        span[TimeLineLength - 1] = Wire.LF;
        output.Advance(TimeLineLength);
        return TimeLineLength;
    }

    /// <summary>Writes <c>yyyy-MM-ddTHH:mm:ss+hh:mm</c> (<see cref="TimestampLength"/> bytes) into <paramref name="destination"/>.</summary>
    public static void FormatTimestamp(DateTimeOffset time, Span<byte> destination)
    {
        DateTime t = time.DateTime;
        Digits4(destination, t.Year);
        destination[4] = (byte)'-';
        Digits2(destination[5..], t.Month);
        destination[7] = (byte)'-';
        Digits2(destination[8..], t.Day);
        destination[10] = (byte)'T';
        Digits2(destination[11..], t.Hour);
        destination[13] = (byte)':';
        Digits2(destination[14..], t.Minute);
        destination[16] = (byte)':';
        Digits2(destination[17..], t.Second);
        int offsetMinutes = (int)time.Offset.TotalMinutes;
        destination[19] = offsetMinutes < 0 ? (byte)'-' : (byte)'+';
        offsetMinutes = Math.Abs(offsetMinutes);
        Digits2(destination[20..], offsetMinutes / 60);
        destination[22] = (byte)':';
        Digits2(destination[23..], offsetMinutes % 60);
    }

    /// <summary>
    /// <c>ECHO text</c>, the text verbatim. A byte 255 is written as IAC IAC, as telnet requires and as the
    /// server reads it.
    /// </summary>
    public static int WriteEcho(IBufferWriter<byte> output, ReadOnlySpan<byte> text)
    {
        int total = Wire.EchoPrefix.Length + text.Length + 1;
        Span<byte> span = output.GetSpan();
        if (total <= span.Length && !text.Contains(Telnet.Iac))
        {
            Wire.EchoPrefix.CopyTo(span);
            text.CopyTo(span[Wire.EchoPrefix.Length..]);
            span[total - 1] = Wire.LF;
            output.Advance(total);
            return total;
        }

        output.Write(Wire.EchoPrefix);
        int escaped = Telnet.WriteEscaped(output, text);
        output.Write([Wire.LF]);
        return Wire.EchoPrefix.Length + escaped + 1;
    }

    private static int WriteFixed(IBufferWriter<byte> output, ReadOnlySpan<byte> line)
    {
        output.Write(line);
        return line.Length;
    }

    private static void Digits2(Span<byte> destination, int value)
    {
        destination[0] = (byte)('0' + (value / 10));
        destination[1] = (byte)('0' + (value % 10));
    }

    private static void Digits4(Span<byte> destination, int value)
    {
        Digits2(destination, value / 100);
        Digits2(destination[2..], value % 100);
    }
}
