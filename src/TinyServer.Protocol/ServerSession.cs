using System.Buffers;

namespace TinyServer.Protocol;

/// <summary>
/// The server side of one connection, without I/O: request bytes in, response bytes out. The host writes the
/// banner, then calls <see cref="Process"/> with every buffer it reads and flushes once per call.
/// </summary>
public sealed class ServerSession(TimeProvider time, int maxLineLength = Wire.DefaultMaxLineLength) : IDisposable
{
    private readonly LineDecoder _decoder = new(maxLineLength);

    /// <summary>Why the session ended; <see cref="CloseReason.None"/> while it is open.</summary>
    public CloseReason CloseReason { get; private set; }

    /// <summary>Bytes of an unfinished line held by the session itself, beyond what the caller left unconsumed.</summary>
    public int HeldBytes => _decoder.HeldBytes;

    /// <summary>Requests answered so far.</summary>
    public long Requests { get; private set; }

    /// <summary>
    /// Answers every complete line in <paramref name="input"/>. Returns false when the connection must be closed
    /// once the output is flushed: after QUIT, a line that is too long, or the end of the input.
    /// </summary>
    /// <param name="input">Everything received and not yet consumed.</param>
    /// <param name="isFinalBlock">The peer has finished sending (half-close): a last line without LF is a line too.</param>
    /// <param name="output">Where responses go.</param>
    /// <param name="consumed">How far the input was consumed; the rest must be offered again with more data.</param>
    public bool Process(ReadOnlySequence<byte> input, bool isFinalBlock, IBufferWriter<byte> output, out SequencePosition consumed)
    {
        var reader = new SequenceReader<byte>(input);
        while (true)
        {
            switch (_decoder.TryReadLine(ref reader, isFinalBlock, output, out ReadOnlySpan<byte> line))
            {
                case LineStatus.Line:
                    Requests++;
                    if (!Answer(line, output))
                    {
                        CloseReason = CloseReason.Quit;
                        consumed = input.End; // Lines after QUIT are ignored.
                        return false;
                    }

                    break;
                case LineStatus.LineTooLong:
                    Responses.WriteError(output, ErrorCode.LineTooLong);
                    CloseReason = CloseReason.LineTooLong;
                    consumed = input.End;
                    return false;
                default:
                    consumed = reader.Position;
                    if (isFinalBlock)
                    {
                        CloseReason = CloseReason.EndOfInput;
                        return false;
                    }

                    return true;
            }
        }
    }

    private bool Answer(ReadOnlySpan<byte> line, IBufferWriter<byte> output)
    {
        switch (Commands.Parse(line, out ReadOnlySpan<byte> text))
        {
            case Command.Time:
                Responses.WriteTime(output, time.GetLocalNow());
                return true;
            case Command.Echo:
                Responses.WriteEcho(output, text);
                return true;
            case Command.Help:
                Responses.WriteHelp(output);
                return true;
            case Command.Quit:
                Responses.WriteBye(output);
                return false;
            case Command.BadArguments:
                Responses.WriteError(output, ErrorCode.BadArguments);
                return true;
            default:
                Responses.WriteError(output, ErrorCode.UnknownCommand);
                return true;
        }
    }

    public void Dispose() => _decoder.Dispose();
}

/// <summary>Why a <see cref="ServerSession"/> asked to close its connection.</summary>
public enum CloseReason
{
    None,
    Quit,
    LineTooLong,
    EndOfInput,
}
