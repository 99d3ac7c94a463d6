using System.Buffers;
using System.Text;
using TinyServer.Protocol;

namespace TinyServer.Tests.Protocol;

/// <summary>A clock fixed at 2025-09-12T17:24:13 in a -05:00 zone.</summary>
public sealed class FixedTime(TimeSpan? offset = null) : TimeProvider
{
    public const string Expected = "TIME 2025-09-12T17:24:13-05:00";

    private readonly TimeZoneInfo _zone = TimeZoneInfo.CreateCustomTimeZone("test", offset ?? TimeSpan.FromHours(-5), "test", "test");

    public override DateTimeOffset GetUtcNow() => new(2025, 9, 12, 22, 24, 13, TimeSpan.Zero);

    public override TimeZoneInfo LocalTimeZone => _zone;
}

/// <summary>A <see cref="ReadOnlySequence{T}"/> made of the given segments, empty ones included.</summary>
public sealed class Segment : ReadOnlySequenceSegment<byte>
{
    private Segment(ReadOnlyMemory<byte> memory, long runningIndex)
    {
        Memory = memory;
        RunningIndex = runningIndex;
    }

    public static ReadOnlySequence<byte> Sequence(IReadOnlyList<byte[]> parts)
    {
        if (parts.Count == 0)
        {
            return ReadOnlySequence<byte>.Empty;
        }

        var first = new Segment(parts[0], 0);
        Segment last = first;
        for (int i = 1; i < parts.Count; i++)
        {
            var next = new Segment(parts[i], last.RunningIndex + last.Memory.Length);
            last.Next = next;
            last = next;
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }
}

/// <summary>
/// Drives a <see cref="ServerSession"/> the way the Kestrel handler does (through
/// <see cref="Properties.SessionDriver"/>): each chunk is appended to what was not consumed, keeping segment
/// boundaries as a pipe does, then processed; half-close is a last, final call.
/// </summary>
public static class ProtocolHarness
{
    public static byte[] B(string text) => Encoding.Latin1.GetBytes(text);

    public static string S(byte[] bytes) => Encoding.Latin1.GetString(bytes);

    public sealed record Result(string Output, bool Closed, CloseReason Reason, int MaxHeld);

    public static Result Run(IReadOnlyList<byte[]> chunks, bool halfClose, int maxLineLength = Wire.DefaultMaxLineLength, int outputBudget = int.MaxValue)
    {
        Properties.SessionDriver.Result result = Properties.SessionDriver.Run(chunks, halfClose, maxLineLength, outputBudget, new FixedTime());
        return new Result(S(result.Output), result.Closed, result.Reason, Math.Max(result.MaxHeldWaiting, result.MaxHeldBytes));
    }

    /// <summary>Every way of cutting <paramref name="input"/> in two, and one byte per chunk.</summary>
    public static IEnumerable<byte[][]> Splits(byte[] input)
    {
        yield return [input];
        for (int cut = 0; cut <= input.Length; cut++)
        {
            yield return [input[..cut], input[cut..]];
        }

        yield return [.. input.Select(b => new[] { b })];
    }
}
