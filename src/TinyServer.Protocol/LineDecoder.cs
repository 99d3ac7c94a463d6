using System.Buffers;

namespace TinyServer.Protocol;

/// <summary>What <see cref="LineDecoder.TryReadLine"/> found.</summary>
public enum LineStatus
{
    /// <summary>No complete line yet: read more input (or, on the final block, the input is exhausted).</summary>
    NeedMoreData,

    /// <summary>A complete line, line ending and telnet commands removed.</summary>
    Line,

    /// <summary>The line is longer than the maximum. The stream cannot be resynchronised: close it.</summary>
    LineTooLong,
}

/// <summary>
/// Splits a byte stream into lines. A line ends in LF; one CR right before the LF is dropped; telnet IAC
/// sequences are removed (and, when a reply writer is given, every option is refused). Sans-I/O: bytes in,
/// lines out; the caller owns the buffer and the socket.
/// </summary>
/// <remarks>
/// The fast path returns a line as a slice of the caller's buffer: no copy. Only a line that spans buffer
/// segments, or that carries telnet commands, is assembled in a pooled buffer of at most
/// <c>MaxLineLength + 1</c> bytes (the line and a CR). An unfinished line is reported as
/// <see cref="LineStatus.LineTooLong"/> as soon as it cannot end within the limit, so no more than the limit
/// is ever held for it, however its bytes arrive.
/// </remarks>
public sealed class LineDecoder : IDisposable
{
    private const int InitialCarrySize = 256;

    private enum TelnetState : byte
    {
        Data,
        Command,
        Option,
        Subnegotiation,
        SubnegotiationCommand,
    }

    private readonly int _maxLineLength;
    private byte[]? _carry;
    private int _carryLength;
    private bool _carrying;
    private bool _lineInCarry;
    private TelnetState _telnet;
    private byte _optionVerb;

    /// <param name="maxLineLength">The longest line accepted, in bytes, line ending excluded.</param>
    public LineDecoder(int maxLineLength = Wire.DefaultMaxLineLength)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLineLength, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxLineLength, int.MaxValue - 2);
        _maxLineLength = maxLineLength;
    }

    public int MaxLineLength => _maxLineLength;

    /// <summary>Bytes of an unfinished line held by the decoder itself (not in the caller's buffer).</summary>
    public int HeldBytes => _carrying ? _carryLength : 0;

    /// <summary>
    /// Reads the next line from <paramref name="reader"/>. The returned line is valid until the next call.
    /// </summary>
    /// <param name="reader">The unread input; advanced past what was consumed.</param>
    /// <param name="isFinalBlock">No more input follows: a last line without LF counts as a line.</param>
    /// <param name="telnetReplies">Where refusals of telnet options go (WONT for DO, DONT for WILL); null to ignore them.</param>
    /// <param name="line">The line, when the result is <see cref="LineStatus.Line"/>.</param>
    public LineStatus TryReadLine(ref SequenceReader<byte> reader, bool isFinalBlock, IBufferWriter<byte>? telnetReplies, out ReadOnlySpan<byte> line)
    {
        if (_lineInCarry)
        {
            _lineInCarry = false;
            _carryLength = 0;
            ReturnCarry();
        }

        if (!_carrying)
        {
            ReadOnlySpan<byte> span = reader.UnreadSpan;
            int window = Math.Min(span.Length, _maxLineLength + 2);
            int index = span[..window].IndexOfAny(Wire.LF, Telnet.Iac);
            if (index >= 0 && span[index] == Wire.LF)
            {
                line = TrimCr(span[..index]);
                reader.Advance(index + 1);
                return line.Length <= _maxLineLength ? LineStatus.Line : LineStatus.LineTooLong;
            }

            if (index < 0)
            {
                if (CannotEndWithinLimit(span))
                {
                    line = default;
                    return LineStatus.LineTooLong;
                }

                if (reader.Remaining == span.Length)
                {
                    // The unfinished line stays in the caller's buffer until its LF arrives.
                    if (!isFinalBlock || span.IsEmpty)
                    {
                        line = default;
                        return LineStatus.NeedMoreData;
                    }

                    line = TrimCr(span);
                    reader.Advance(span.Length);
                    return LineStatus.Line;
                }

                index = span.Length; // The line goes on in the next segment: assemble it here.
            }
            else if (CannotEndWithinLimit(span[..index]))
            {
                line = default; // Too long before its first telnet command.
                return LineStatus.LineTooLong;
            }

            _carrying = true;
            Append(span[..index]);
            reader.Advance(index);
        }

        return ReadCarriedLine(ref reader, isFinalBlock, telnetReplies, out line);
    }

    private LineStatus ReadCarriedLine(ref SequenceReader<byte> reader, bool isFinalBlock, IBufferWriter<byte>? telnetReplies, out ReadOnlySpan<byte> line)
    {
        while (!reader.End)
        {
            ReadOnlySpan<byte> span = reader.UnreadSpan;
            if (_telnet != TelnetState.Data)
            {
                OnTelnetByte(span[0], telnetReplies);
                reader.Advance(1);
            }
            else
            {
                int index = span.IndexOfAny(Wire.LF, Telnet.Iac);
                int take = index < 0 ? span.Length : index;
                if (_carryLength + take > _maxLineLength + 1)
                {
                    line = default;
                    return LineStatus.LineTooLong;
                }

                Append(span[..take]);
                reader.Advance(take);
                if (index >= 0)
                {
                    reader.Advance(1);
                    if (span[index] == Wire.LF)
                    {
                        return CarriedLine(out line);
                    }

                    _telnet = TelnetState.Command;
                }
            }

            // Checked after every step, so the answer cannot depend on where the input was cut.
            if (CannotEndWithinLimit(_carry.AsSpan(0, _carryLength)))
            {
                line = default;
                return LineStatus.LineTooLong;
            }
        }

        if (isFinalBlock && _carryLength > 0)
        {
            return CarriedLine(out line);
        }

        line = default;
        return LineStatus.NeedMoreData;
    }

    private LineStatus CarriedLine(out ReadOnlySpan<byte> line)
    {
        _carrying = false;
        _lineInCarry = true;
        line = TrimCr(_carry.AsSpan(0, _carryLength));
        return line.Length <= _maxLineLength ? LineStatus.Line : LineStatus.LineTooLong;
    }

    private void OnTelnetByte(byte b, IBufferWriter<byte>? replies)
    {
        switch (_telnet)
        {
            case TelnetState.Command:
                _telnet = TelnetState.Data;
                switch (b)
                {
                    case Telnet.Iac:
                        Append([Telnet.Iac]); // IAC IAC is a data byte 255.
                        break;
                    case Telnet.Do or Telnet.Dont or Telnet.Will or Telnet.Wont:
                        _optionVerb = b;
                        _telnet = TelnetState.Option;
                        break;
                    case Telnet.SubnegotiationBegin:
                        _telnet = TelnetState.Subnegotiation;
                        break;
                    case Telnet.InterruptProcess or Telnet.EraseLine:
                        _carryLength = 0;
                        break;
                    case Telnet.EraseCharacter:
                        _carryLength = Math.Max(0, _carryLength - 1);
                        break;
                    default:
                        break; // NOP, DM, BRK, AO, AYT, GA and a stray SE carry no data.
                }

                break;
            case TelnetState.Option:
                _telnet = TelnetState.Data;
                if (replies is not null && _optionVerb is Telnet.Do or Telnet.Will)
                {
                    // Refuse every option: DO x -> WONT x, WILL x -> DONT x. DONT and WONT need no answer (RFC 1143).
                    Span<byte> refusal = replies.GetSpan(3);
                    refusal[0] = Telnet.Iac;
                    refusal[1] = _optionVerb == Telnet.Do ? Telnet.Wont : Telnet.Dont;
                    refusal[2] = b;
                    replies.Advance(3);
                }

                break;
            case TelnetState.Subnegotiation:
                if (b == Telnet.Iac)
                {
                    _telnet = TelnetState.SubnegotiationCommand;
                }

                break;
            case TelnetState.SubnegotiationCommand:
                _telnet = b == Telnet.SubnegotiationEnd ? TelnetState.Data : TelnetState.Subnegotiation;
                break;
            default:
                throw new InvalidOperationException("unreachable telnet state");
        }
    }

    // An unfinished line of n bytes can still end within the limit only if n <= max, or n == max + 1 and its
    // last byte is the CR of a CRLF.
    private bool CannotEndWithinLimit(ReadOnlySpan<byte> unfinished) =>
        unfinished.Length > _maxLineLength + 1
        || (unfinished.Length == _maxLineLength + 1 && unfinished[_maxLineLength] != Wire.CR);

    private static ReadOnlySpan<byte> TrimCr(ReadOnlySpan<byte> line) =>
        line.Length > 0 && line[^1] == Wire.CR ? line[..^1] : line;

    private void Append(ReadOnlySpan<byte> bytes)
    {
        int needed = _carryLength + bytes.Length;
        if (_carry is null || needed > _carry.Length)
        {
            int size = Math.Max(needed, Math.Min(_maxLineLength + 1, Math.Max(InitialCarrySize, (_carry?.Length ?? 0) * 2)));
            byte[] larger = ArrayPool<byte>.Shared.Rent(size);
            _carry.AsSpan(0, _carryLength).CopyTo(larger);
            ReturnCarry();
            _carry = larger;
        }

        bytes.CopyTo(_carry.AsSpan(_carryLength));
        _carryLength = needed;
    }

    private void ReturnCarry()
    {
        if (_carry is not null)
        {
            ArrayPool<byte>.Shared.Return(_carry);
            _carry = null;
        }
    }

    public void Dispose()
    {
        _carryLength = 0;
        _carrying = false;
        _lineInCarry = false;
        ReturnCarry();
    }
}
