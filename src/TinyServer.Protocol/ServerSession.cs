using System.Buffers;
using System.Runtime.CompilerServices;

namespace TinyServer.Protocol;

/// <summary>What the host does after <see cref="ServerSession.Process"/>.</summary>
public enum SessionStatus
{
    /// <summary>Every complete line was answered: flush, then read more input.</summary>
    NeedMoreInput,

    /// <summary>
    /// The output budget is spent with lines still waiting: flush (which waits while the peer is not reading),
    /// then call again with the unconsumed input, without waiting for new input.
    /// </summary>
    OutputFull,

    /// <summary>Flush, then close the connection: after QUIT, a line too long, or the end of the input.</summary>
    Closed,
}

/// <summary>
/// The server side of one connection, without I/O: request bytes in, reply bytes out. The host writes the
/// banner, then calls <see cref="Process"/> with every buffer it reads and flushes once per call.
/// </summary>
public sealed class ServerSession(TimeProvider time, int maxLineLength = Wire.DefaultMaxLineLength) : IDisposable
{
    private readonly LineDecoder _decoder = new(maxLineLength);
    private TimeCache _time;

    /// <summary>Why the session ended; <see cref="CloseReason.None"/> while it is open.</summary>
    public CloseReason CloseReason { get; private set; }

    /// <summary>Bytes of an unfinished line held by the session itself, beyond what the caller left unconsumed.</summary>
    public int HeldBytes => _decoder.HeldBytes;

    /// <summary>Requests answered so far.</summary>
    public long Requests { get; private set; }

    // Metrics: plain per-connection counts, read by the host once per read (never shared between threads).
    private CommandCounts _commandCounts;

    /// <summary>Requests answered so far that <see cref="Commands.Parse"/> classified as <paramref name="command"/>.</summary>
    public long Answered(Command command) => _commandCounts[(int)command];

    /// <summary>Lines refused with <c>ERROR LINE_TOO_LONG</c> (0 or 1: the session closes after one).</summary>
    public long LinesTooLong { get; private set; }

    /// <summary>Input bytes consumed so far (what <see cref="Process"/> reported as consumed, summed).</summary>
    public long BytesIn { get; private set; }

    /// <summary>Reply bytes written so far by <see cref="Process"/>.</summary>
    public long BytesOut { get; private set; }

    /// <summary>
    /// Answers the complete lines in <paramref name="input"/>, in order, until the input is exhausted, the
    /// session closes, or the replies written reach <paramref name="outputBudget"/> bytes.
    /// </summary>
    /// <param name="input">Everything received and not yet consumed.</param>
    /// <param name="isFinalBlock">The peer has finished sending (half-close): a last line without LF is a line too.</param>
    /// <param name="output">Where replies go.</param>
    /// <param name="outputBudget">Stop answering once this many reply bytes were written in this call, so that a
    /// peer that pipelines without reading cannot make the server buffer more than about this much.</param>
    /// <param name="consumed">How far the input was consumed; the rest must be offered again.</param>
    public SessionStatus Process(ReadOnlySequence<byte> input, bool isFinalBlock, IBufferWriter<byte> output, int outputBudget, out SequencePosition consumed)
    {
        var reader = new SequenceReader<byte>(input);
        int written = 0;
        while (true)
        {
            if (written >= outputBudget)
            {
                consumed = reader.Position;
                Tally(reader.Consumed, written);
                return SessionStatus.OutputFull;
            }

            switch (_decoder.TryReadLine(ref reader, isFinalBlock, output, out ReadOnlySpan<byte> line))
            {
                case LineStatus.Line:
                    Requests++;
                    written += Answer(line, output);
                    if (CloseReason == CloseReason.Quit)
                    {
                        consumed = input.End; // Lines after QUIT are ignored.
                        Tally(input.Length, written);
                        return SessionStatus.Closed;
                    }

                    break;
                case LineStatus.LineTooLong:
                    written += ReplyWriter.WriteError(output, ErrorCode.LineTooLong);
                    CloseReason = CloseReason.LineTooLong;
                    LinesTooLong++;
                    consumed = input.End;
                    Tally(input.Length, written);
                    return SessionStatus.Closed;
                default:
                    consumed = reader.Position;
                    Tally(reader.Consumed, written);
                    if (isFinalBlock)
                    {
                        CloseReason = CloseReason.EndOfInput;
                        return SessionStatus.Closed;
                    }

                    return SessionStatus.NeedMoreInput;
            }
        }
    }

    /// <summary>Answers every complete line, with no output budget.</summary>
    public SessionStatus Process(ReadOnlySequence<byte> input, bool isFinalBlock, IBufferWriter<byte> output, out SequencePosition consumed) =>
        Process(input, isFinalBlock, output, int.MaxValue, out consumed);

    private void Tally(long bytesIn, int bytesOut)
    {
        BytesIn += bytesIn;
        BytesOut += bytesOut;
    }

    private int Answer(ReadOnlySpan<byte> line, IBufferWriter<byte> output)
    {
        Command command = Commands.Parse(line, out ReadOnlySpan<byte> text);
        _commandCounts[(int)command]++;
        switch (command)
        {
            case Command.Time:
                return ReplyWriter.WriteTime(output, _time.Now(time));
            case Command.Echo:
                return ReplyWriter.WriteEcho(output, text);
            case Command.Help:
                return ReplyWriter.WriteHelp(output);
            case Command.Quit:
                CloseReason = CloseReason.Quit;
                return ReplyWriter.WriteBye(output);
            case Command.BadArguments:
                return ReplyWriter.WriteError(output, ErrorCode.BadArguments);
            default:
                return ReplyWriter.WriteError(output, ErrorCode.UnknownCommand);
        }
    }

    public void Dispose() => _decoder.Dispose();

    /// <summary>One count per <see cref="Command"/> value, inside the session object (no array to allocate).</summary>
    [InlineArray((int)Command.Quit + 1)]
    private struct CommandCounts
    {
        private long _first;
    }
}

/// <summary>Why a <see cref="ServerSession"/> asked to close its connection.</summary>
public enum CloseReason
{
    None,
    Quit,
    LineTooLong,
    EndOfInput,
}
