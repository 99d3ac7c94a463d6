using System.Buffers;
using TinyServer.Protocol;

namespace TinyServer.Fuzz;

/// <summary>
/// The fuzz target: arbitrary bytes through a <see cref="ServerSession"/>, driven as the Kestrel handler drives it.
/// It throws <see cref="FuzzViolation"/> (which the fuzzer records as a crash) unless the session answers with
/// well-formed replies or closes, never holds more than the maximum line length + 1 bytes for an unfinished line,
/// and keeps to its output budget. Any other exception escaping the session is a crash too.
/// </summary>
/// <remarks>
/// The first bytes of the input set the session up, so that the fuzzer explores segmentation and budgets too:
/// <list type="bullet">
/// <item>byte 0: maximum line length, 1 + b % 32;</item>
/// <item>byte 1: output budget per call, b (1 to 255), or unlimited for 0;</item>
/// <item>byte 2: bit 0 half-close after the last chunk; bits 1-2: n - 1, the number of chunk-size bytes;</item>
/// <item>the next n bytes: chunk sizes, used in turn (0 is an empty segment); the rest is the request stream.</item>
/// </list>
/// Shorter inputs use the defaults: maximum 16, no budget, no half-close, the whole stream at once.
/// The fuzzer (fuzz/TinyServer.Fuzz) and the tests (tests/TinyServer.Tests/Properties/FuzzTargetTests.cs) both run it.
/// </remarks>
public static class FuzzTarget
{
    private const byte Lf = (byte)'\n';
    private const byte Sp = (byte)' ';

    public static void Run(ReadOnlySpan<byte> data)
    {
        int maxLineLength = data.Length > 0 ? 1 + (data[0] % 32) : 16;
        int outputBudget = data.Length > 1 && data[1] != 0 ? data[1] : int.MaxValue;
        bool halfClose = data.Length > 2 && (data[2] & 1) != 0;
        int planLength = data.Length > 2 ? 1 + ((data[2] >> 1) & 3) : 0;
        int header = Math.Min(data.Length, 3 + planLength);
        ReadOnlySpan<byte> plan = data[Math.Min(data.Length, 3)..header];
        ReadOnlySpan<byte> stream = data[header..];
        Run(Cut(stream, plan), halfClose, maxLineLength, outputBudget);
    }

    /// <summary>Runs one session over <paramref name="chunks"/> and checks every rule.</summary>
    public static void Run(IReadOnlyList<byte[]> chunks, bool halfClose, int maxLineLength, int outputBudget)
    {
        using var session = new ServerSession(FixedClock.Instance, maxLineLength);
        var output = new ArrayBufferWriter<byte>();
        var pending = new List<byte[]>();
        int lines = 0;
        for (int i = 0; i <= chunks.Count; i++)
        {
            bool final = i == chunks.Count;
            if (final && !halfClose)
            {
                break;
            }

            if (!final)
            {
                pending.Add(chunks[i]);
                lines += chunks[i].AsSpan().Count(Lf);
            }

            SessionStatus status;
            do
            {
                ReadOnlySequence<byte> input = Sequence(pending);
                int before = output.WrittenCount;
                status = session.Process(input, final, output, outputBudget, out SequencePosition consumed);
                ReadOnlySequence<byte> rest = input.Slice(consumed);
                CheckCallOutput(output.WrittenSpan[before..], outputBudget, maxLineLength);
                switch (status)
                {
                    case SessionStatus.Closed:
                        CheckReplies(output.WrittenSpan, closed: true, final, lines + 1, maxLineLength);
                        return;
                    case SessionStatus.OutputFull:
                        if (rest.Length == input.Length && output.WrittenCount == before)
                        {
                            throw new FuzzViolation("OutputFull without consuming or writing anything: the host would spin");
                        }

                        break;
                    case SessionStatus.NeedMoreInput:
                        // Every complete line was answered: what is left is one unfinished line.
                        if (rest.Length + session.HeldBytes > maxLineLength + 1)
                        {
                            throw new FuzzViolation($"holds {rest.Length} unconsumed + {session.HeldBytes} bytes for an unfinished line, over the maximum {maxLineLength} + 1");
                        }

                        if (final)
                        {
                            throw new FuzzViolation("asked for more input after the end of input");
                        }

                        break;
                    default:
                        throw new FuzzViolation($"unknown status {status}");
                }

                if (session.HeldBytes > maxLineLength + 1)
                {
                    throw new FuzzViolation($"HeldBytes {session.HeldBytes} over the maximum {maxLineLength} + 1");
                }

                pending = [];
                foreach (ReadOnlyMemory<byte> segment in rest)
                {
                    pending.Add(segment.ToArray());
                }
            }
            while (status == SessionStatus.OutputFull);
        }

        CheckReplies(output.WrittenSpan, closed: false, final: false, lines + 1, maxLineLength);
    }

    /// <summary>Cuts <paramref name="stream"/> by the sizes in <paramref name="plan"/>, in turn.</summary>
    public static List<byte[]> Cut(ReadOnlySpan<byte> stream, ReadOnlySpan<byte> plan)
    {
        var chunks = new List<byte[]>();
        if (plan.IsEmpty)
        {
            chunks.Add(stream.ToArray());
            return chunks;
        }

        int at = 0;
        int step = 0;
        int empties = 0;
        while (at < stream.Length)
        {
            int size = Math.Min(plan[step++ % plan.Length], stream.Length - at);
            if (size == 0 && ++empties > plan.Length)
            {
                size = 1; // A plan of zeros alone would never end.
            }

            chunks.Add(stream.Slice(at, size).ToArray());
            at += size;
        }

        return chunks;
    }

    // One call writes telnet refusals, then replies until the budget is reached: at most one reply past it.
    private static void CheckCallOutput(ReadOnlySpan<byte> written, int outputBudget, int maxLineLength)
    {
        if (outputBudget == int.MaxValue)
        {
            return;
        }

        int replies = 0;
        int at = 0;
        while (at < written.Length)
        {
            if (written[at] == Telnet.Iac)
            {
                at += 3;
                continue;
            }

            int end = written[at..].IndexOf(Lf);
            int length = end < 0 ? written.Length - at : end + 1;
            replies += length;
            at += length;
        }

        // The longest reply: ECHO of a whole line of 255s (each doubled), or HELP.
        int longestReply = Math.Max("ECHO \n"u8.Length + (2 * maxLineLength), "HELP TIME | ECHO <text> | HELP | QUIT\n"u8.Length);
        if (replies > outputBudget - 1 + longestReply)
        {
            throw new FuzzViolation($"one call wrote {replies} reply bytes with an output budget of {outputBudget}");
        }
    }

    /// <summary>
    /// The whole output: telnet refusals between well-formed reply lines, no more replies than lines (every LF, and
    /// a last unfinished line); BYE or LINE_TOO_LONG last, and only when closed.
    /// </summary>
    private static void CheckReplies(ReadOnlySpan<byte> output, bool closed, bool final, int maxLines, int maxLineLength)
    {
        int at = 0;
        int replies = 0;
        bool ended = false;
        while (at < output.Length)
        {
            if (ended)
            {
                throw new FuzzViolation($"output after the last reply: {Show(output[at..])}");
            }

            if (output[at] == Telnet.Iac)
            {
                if (output.Length - at < 3 || output[at + 1] is not (Telnet.Wont or Telnet.Dont))
                {
                    throw new FuzzViolation($"not a telnet refusal: {Show(output[at..])}");
                }

                at += 3;
                continue;
            }

            int end = output[at..].IndexOf(Lf);
            if (end < 0)
            {
                throw new FuzzViolation($"reply without LF: {Show(output[at..])}");
            }

            ReadOnlySpan<byte> line = output.Slice(at, end);
            at += end + 1;
            replies++;
            CheckReply(line, maxLineLength);
            ended = line.SequenceEqual("BYE"u8) || line.SequenceEqual("ERROR LINE_TOO_LONG"u8);
        }

        if (replies > maxLines)
        {
            throw new FuzzViolation($"{replies} replies to at most {maxLines} lines");
        }

        if (ended != closed && !(closed && final))
        {
            throw new FuzzViolation(closed ? "closed without BYE, LINE_TOO_LONG or end of input" : "BYE or LINE_TOO_LONG without closing");
        }
    }

    private static void CheckReply(ReadOnlySpan<byte> line, int maxLineLength)
    {
        if (line.SequenceEqual("BYE"u8)
            || line.SequenceEqual("HELP TIME | ECHO <text> | HELP | QUIT"u8)
            || line.SequenceEqual("ERROR UNKNOWN_COMMAND"u8)
            || line.SequenceEqual("ERROR BAD_ARGUMENTS"u8)
            || line.SequenceEqual("ERROR LINE_TOO_LONG"u8)
            || line.SequenceEqual(FixedClock.TimeReply))
        {
            return;
        }

        if (!line.StartsWith("ECHO "u8))
        {
            throw new FuzzViolation($"not a reply: {Show(line)}");
        }

        // The text, byte for byte, with each data byte 255 doubled; at least one byte is not a space.
        ReadOnlySpan<byte> escaped = line[5..];
        int length = 0;
        bool onlySpaces = true;
        for (int i = 0; i < escaped.Length; i++, length++)
        {
            onlySpaces &= escaped[i] == Sp;
            if (escaped[i] == Telnet.Iac && (++i >= escaped.Length || escaped[i] != Telnet.Iac))
            {
                throw new FuzzViolation($"ECHO with an undoubled 255: {Show(line)}");
            }
        }

        if (onlySpaces || length + 5 > maxLineLength)
        {
            throw new FuzzViolation($"ECHO reply to no request that fits: {Show(line)}");
        }
    }

    private static string Show(ReadOnlySpan<byte> bytes) =>
        Convert.ToHexString(bytes[..Math.Min(bytes.Length, 64)]) + (bytes.Length > 64 ? "..." : "");

    private static ReadOnlySequence<byte> Sequence(List<byte[]> parts)
    {
        if (parts.Count == 0)
        {
            return ReadOnlySequence<byte>.Empty;
        }

        var first = new Segment(parts[0], 0);
        Segment last = first;
        for (int i = 1; i < parts.Count; i++)
        {
            last = last.Append(parts[i]);
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }

    /// <summary>2025-09-12T17:24:13-05:00, always.</summary>
    private sealed class FixedClock : TimeProvider
    {
        public static readonly FixedClock Instance = new();

        private static readonly TimeZoneInfo Zone = TimeZoneInfo.CreateCustomTimeZone("fuzz", TimeSpan.FromHours(-5), "fuzz", "fuzz");

        public static ReadOnlySpan<byte> TimeReply => "TIME 2025-09-12T17:24:13-05:00"u8;

        public override DateTimeOffset GetUtcNow() => new(2025, 9, 12, 22, 24, 13, TimeSpan.Zero);

        public override TimeZoneInfo LocalTimeZone => Zone;
    }
}

/// <summary>A broken rule; the fuzzer records it as a crash.</summary>
public sealed class FuzzViolation(string message) : Exception(message);
