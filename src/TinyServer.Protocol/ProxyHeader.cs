using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace TinyServer.Protocol;

/// <summary>What <see cref="ProxyHeader.TryParse"/> found.</summary>
public enum ProxyHeaderStatus
{
    /// <summary>Every byte so far can start a valid header: read more input.</summary>
    NeedMoreData,

    /// <summary>A complete, valid header of <see cref="ProxyHeaderResult.Consumed"/> bytes.</summary>
    Valid,

    /// <summary>Not a valid header: the connection must be closed without a reply.</summary>
    Invalid,
}

/// <summary>The command of a header. Version 1 <c>UNKNOWN</c> counts as <see cref="Local"/>: use the real endpoints.</summary>
public enum ProxyCommand
{
    /// <summary>Made by the proxy itself (a health check), or no usable address: the connection's endpoints are the real ones.</summary>
    Local,

    /// <summary>Relayed on behalf of a client, whose address the header carries.</summary>
    Proxy,
}

/// <summary>The outcome of <see cref="ProxyHeader.TryParse"/>.</summary>
/// <param name="Error">On <see cref="ProxyHeaderStatus.Invalid"/>, fixed text naming the fault (never input bytes).</param>
public readonly record struct ProxyHeaderResult(ProxyHeaderStatus Status, int Consumed, ProxyHeader? Header, string? Error)
{
    internal static readonly ProxyHeaderResult More = new(ProxyHeaderStatus.NeedMoreData, 0, null, null);

    internal static ProxyHeaderResult Bad(string error) => new(ProxyHeaderStatus.Invalid, 0, null, error);
}

/// <summary>
/// A PROXY protocol header, version 1 (text) or 2 (binary), as HAProxy's specification (proxy-protocol.txt) defines
/// it, and its strict sans-I/O parser. The version is told by the signature, as HAProxy does, so a receiver accepts
/// both. <see cref="Source"/> is the original client's address, or null when the real connection's endpoints stand
/// (a LOCAL command, <c>UNKNOWN</c>, an unspecified family or transport, an unnamed Unix socket).
/// </summary>
public sealed record ProxyHeader(int Version, ProxyCommand Command, EndPoint? Source, EndPoint? Destination)
{
    /// <summary>Longest version 1 header, CRLF included: the specification's worst case, <c>UNKNOWN</c> with two full IPv6 addresses.</summary>
    public const int MaxV1Length = 107;

    /// <summary>
    /// Longest version 2 header accepted: the 16-byte fixed part and 1,024 bytes of addresses and TLVs. That holds the
    /// largest address block (216 bytes, two Unix paths) with 808 bytes of TLVs, more than HAProxy sends with every TLV
    /// it has (a unique ID of at most 128 bytes, ALPN, an authority of at most 255 bytes, the SSL TLVs), while a
    /// connection still cannot make the server hold more than about a kilobyte before the header is judged. The
    /// specification itself expects the header to fit in one TCP segment.
    /// </summary>
    public const int MaxV2Length = 16 + 1024;

    private const int V2FixedLength = 16;
    private const int UnixPathLength = 108;

    private static ReadOnlySpan<byte> V1Prefix => "PROXY "u8;

    private static ReadOnlySpan<byte> V2Signature => [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];

    /// <summary>
    /// Parses a header at the start of <paramref name="buffer"/>. Returns <see cref="ProxyHeaderStatus.Invalid"/> as soon
    /// as the bytes cannot be the start of a valid header, <see cref="ProxyHeaderStatus.NeedMoreData"/> while they still
    /// can, and <see cref="ProxyHeaderStatus.Valid"/> with the header's length in bytes; what follows is left unread.
    /// </summary>
    public static ProxyHeaderResult TryParse(in ReadOnlySequence<byte> buffer)
    {
        if (buffer.IsEmpty)
        {
            return ProxyHeaderResult.More;
        }

        Span<byte> first = stackalloc byte[1];
        buffer.Slice(0, 1).CopyTo(first);
        return first[0] == V1Prefix[0] ? ParseV1(buffer)
            : first[0] == V2Signature[0] ? ParseV2(buffer)
            : ProxyHeaderResult.Bad("not a PROXY protocol header");
    }

    private static ProxyHeaderResult ParseV1(in ReadOnlySequence<byte> buffer)
    {
        Span<byte> line = stackalloc byte[MaxV1Length];
        int length = (int)Math.Min(buffer.Length, MaxV1Length);
        buffer.Slice(0, length).CopyTo(line);
        line = line[..length];
        int prefix = Math.Min(length, V1Prefix.Length);
        if (!line[..prefix].SequenceEqual(V1Prefix[..prefix]))
        {
            return ProxyHeaderResult.Bad("v1: not 'PROXY '");
        }

        int end = line.IndexOfAny((byte)'\r', (byte)'\n');
        if (end < 0)
        {
            return length == MaxV1Length ? ProxyHeaderResult.Bad("v1: no CRLF within 107 bytes") : ProxyHeaderResult.More;
        }

        if (line[end] != '\r')
        {
            return ProxyHeaderResult.Bad("v1: a bare LF");
        }

        if (end + 1 == length)
        {
            return length == MaxV1Length ? ProxyHeaderResult.Bad("v1: no CRLF within 107 bytes") : ProxyHeaderResult.More;
        }

        if (line[end + 1] != '\n')
        {
            return ProxyHeaderResult.Bad("v1: a bare CR");
        }

        int consumed = end + 2;
        ReadOnlySpan<byte> rest = line[V1Prefix.Length..end];
        if (rest.StartsWith("UNKNOWN"u8) && (rest.Length == 7 || rest[7] == ' '))
        {
            // The receiver must ignore anything between UNKNOWN and the CRLF, and use the real endpoints.
            return new(ProxyHeaderStatus.Valid, consumed, new ProxyHeader(1, ProxyCommand.Local, null, null), null);
        }

        AddressFamily family;
        if (rest.StartsWith("TCP4 "u8))
        {
            family = AddressFamily.InterNetwork;
        }
        else if (rest.StartsWith("TCP6 "u8))
        {
            family = AddressFamily.InterNetworkV6;
        }
        else
        {
            return ProxyHeaderResult.Bad("v1: protocol is not TCP4, TCP6 or UNKNOWN");
        }

        // Exactly four fields after the protocol, each separated by exactly one space.
        rest = rest[5..];
        Span<Range> fields = stackalloc Range[4];
        int start = 0;
        for (int i = 0; i < 4; i++)
        {
            int space = i < 3 ? rest[start..].IndexOf((byte)' ') : rest[start..].Length;
            if (space <= 0 || (i == 3 && rest[start..].Contains((byte)' ')))
            {
                return ProxyHeaderResult.Bad("v1: not five fields separated by single spaces");
            }

            fields[i] = start..(start + space);
            start += space + 1;
        }

        ReadOnlySpan<byte> sourceText = rest[fields[0]];
        ReadOnlySpan<byte> destinationText = rest[fields[1]];
        ReadOnlySpan<byte> sourcePortText = rest[fields[2]];
        ReadOnlySpan<byte> destinationPortText = rest[fields[3]];
        if (!TryParseAddress(sourceText, family, out IPAddress? source) || !TryParseAddress(destinationText, family, out IPAddress? destination))
        {
            return ProxyHeaderResult.Bad(family == AddressFamily.InterNetwork ? "v1: not a dotted-decimal IPv4 address" : "v1: not an IPv6 address");
        }

        if (!TryParsePort(sourcePortText, out int sourcePort) || !TryParsePort(destinationPortText, out int destinationPort))
        {
            return ProxyHeaderResult.Bad("v1: not a port 0-65535 without leading zeroes");
        }

        return new(ProxyHeaderStatus.Valid, consumed, new ProxyHeader(1, ProxyCommand.Proxy, new IPEndPoint(source, sourcePort), new IPEndPoint(destination, destinationPort)), null);
    }

    private static bool TryParseAddress(ReadOnlySpan<byte> text, AddressFamily family, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out IPAddress? address)
    {
        address = null;
        if (family == AddressFamily.InterNetwork)
        {
            // Exactly four decimal numbers 0-255 separated by single dots, no leading zeroes (inet_aton would read 010 as octal).
            Span<byte> octets = stackalloc byte[4];
            for (int i = 0; i < 4; i++)
            {
                int dot = text.IndexOf((byte)'.');
                ReadOnlySpan<byte> number = i < 3 ? (dot < 0 ? default : text[..dot]) : text;
                if (i < 3 && dot < 0 || !TryParseDecimal(number, 3, out int value) || value > 255)
                {
                    return false;
                }

                octets[i] = (byte)value;
                text = i < 3 ? text[(dot + 1)..] : default;
            }

            address = new IPAddress(octets);
            return true;
        }

        // Hexadecimal groups separated by colons, one "::" at most, an IPv4 tail allowed (as inet_pton reads them).
        // Only these characters, so no zone index or brackets; the 39-character bound is the specification's.
        if (text.Length is 0 or > 39 || text.IndexOfAnyExcept("0123456789abcdefABCDEF:."u8) >= 0)
        {
            return false;
        }

        Span<char> chars = stackalloc char[text.Length];
        Encoding.ASCII.GetChars(text, chars);
        return IPAddress.TryParse(chars, out address) && address.AddressFamily == AddressFamily.InterNetworkV6;
    }

    private static bool TryParsePort(ReadOnlySpan<byte> text, out int port) => TryParseDecimal(text, 5, out port) && port <= 65535;

    // 1 to maxDigits decimal digits; "0" alone is the only number that may start with 0.
    private static bool TryParseDecimal(ReadOnlySpan<byte> text, int maxDigits, out int value)
    {
        value = 0;
        if (text.Length == 0 || text.Length > maxDigits || (text[0] == '0' && text.Length > 1))
        {
            return false;
        }

        foreach (byte digit in text)
        {
            if (digit is < (byte)'0' or > (byte)'9')
            {
                return false;
            }

            value = (value * 10) + (digit - '0');
        }

        return true;
    }

    private static ProxyHeaderResult ParseV2(in ReadOnlySequence<byte> buffer)
    {
        Span<byte> fixedPart = stackalloc byte[V2FixedLength];
        int available = (int)Math.Min(buffer.Length, V2FixedLength);
        buffer.Slice(0, available).CopyTo(fixedPart);
        int signature = Math.Min(available, V2Signature.Length);
        if (!fixedPart[..signature].SequenceEqual(V2Signature[..signature]))
        {
            return ProxyHeaderResult.Bad("v2: not the signature");
        }

        if (available > 12 && fixedPart[12] >> 4 != 2)
        {
            return ProxyHeaderResult.Bad("v2: version is not 2");
        }

        if (available > 12 && (fixedPart[12] & 0x0F) > 1)
        {
            return ProxyHeaderResult.Bad("v2: command is not LOCAL or PROXY");
        }

        if (available > 13 && (fixedPart[13] >> 4 > 3 || (fixedPart[13] & 0x0F) > 2))
        {
            return ProxyHeaderResult.Bad("v2: unknown address family or transport");
        }

        if (available < V2FixedLength)
        {
            return ProxyHeaderResult.More;
        }

        int length = V2FixedLength + BinaryPrimitives.ReadUInt16BigEndian(fixedPart[14..]);
        if (length > MaxV2Length)
        {
            return ProxyHeaderResult.Bad("v2: longer than 1040 bytes");
        }

        if (buffer.Length < length)
        {
            return ProxyHeaderResult.More;
        }

        bool local = (fixedPart[12] & 0x0F) == 0;
        int family = fixedPart[13] >> 4;
        int transport = fixedPart[13] & 0x0F;
        if (local)
        {
            // The real endpoints stand; the block, whatever it holds, is skipped.
            return new(ProxyHeaderStatus.Valid, length, new ProxyHeader(2, ProxyCommand.Local, null, null), null);
        }

        int addressLength = family switch
        {
            1 => 12,
            2 => 36,
            3 => 2 * UnixPathLength,
            _ => 0,
        };
        if (family == 0 || transport == 0)
        {
            // AF_UNSPEC or an unspecified transport: accepted, and the address information is ignored.
            return new(ProxyHeaderStatus.Valid, length, new ProxyHeader(2, ProxyCommand.Local, null, null), null);
        }

        if (length - V2FixedLength < addressLength)
        {
            return ProxyHeaderResult.Bad("v2: address block shorter than its family needs");
        }

        if (!TlvsFit(buffer.Slice(V2FixedLength + addressLength, length - V2FixedLength - addressLength)))
        {
            return ProxyHeaderResult.Bad("v2: a TLV runs past the header");
        }

        if (transport != 1)
        {
            // A datagram connection is not the kind this server serves: the real endpoints stand, as the
            // specification allows (a receiver falls back to UNSPEC for the combinations it does not support).
            return new(ProxyHeaderStatus.Valid, length, new ProxyHeader(2, ProxyCommand.Local, null, null), null);
        }

        Span<byte> block = stackalloc byte[2 * UnixPathLength];
        block = block[..addressLength];
        buffer.Slice(V2FixedLength, addressLength).CopyTo(block);
        EndPoint? source;
        EndPoint? destination;
        if (family == 3)
        {
            if (!TryReadUnixPath(block[..UnixPathLength], out source) || !TryReadUnixPath(block[UnixPathLength..], out destination))
            {
                return ProxyHeaderResult.Bad("v2: a Unix socket path without its terminating zero");
            }
        }
        else
        {
            int size = family == 1 ? 4 : 16;
            source = new IPEndPoint(new IPAddress(block[..size]), BinaryPrimitives.ReadUInt16BigEndian(block[(2 * size)..]));
            destination = new IPEndPoint(new IPAddress(block[size..(2 * size)]), BinaryPrimitives.ReadUInt16BigEndian(block[((2 * size) + 2)..]));
        }

        return source is not null
            ? new(ProxyHeaderStatus.Valid, length, new ProxyHeader(2, ProxyCommand.Proxy, source, destination), null)
            : new(ProxyHeaderStatus.Valid, length, new ProxyHeader(2, ProxyCommand.Local, null, null), null);
    }

    // Each TLV is a type byte, a two-byte big-endian length and that many bytes; they must fill the rest exactly.
    private static bool TlvsFit(ReadOnlySequence<byte> tlvs)
    {
        var reader = new SequenceReader<byte>(tlvs);
        while (!reader.End)
        {
            if (!reader.TryRead(out _) || !reader.TryReadBigEndian(out short length) || reader.Remaining < (ushort)length)
            {
                return false;
            }

            reader.Advance((ushort)length);
        }

        return true;
    }

    // A path ends at its first zero byte. An unnamed or abstract socket (a zero first) has no path to report: null.
    private static bool TryReadUnixPath(ReadOnlySpan<byte> field, out EndPoint? endPoint)
    {
        endPoint = null;
        int end = field.IndexOf((byte)0);
        if (end < 0)
        {
            return false;
        }

        if (end > 0)
        {
            try
            {
                endPoint = new UnixDomainSocketEndPoint(Encoding.UTF8.GetString(field[..end]));
            }
            catch (ArgumentException)
            {
                // Bytes that do not decode to a path this platform can hold: no path to report.
            }
        }

        return true;
    }
}
