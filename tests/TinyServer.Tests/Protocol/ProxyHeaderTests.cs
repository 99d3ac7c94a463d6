using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using TinyServer.Protocol;
using static TinyServer.Tests.Protocol.ProtocolHarness;

namespace TinyServer.Tests.Protocol;

/// <summary>
/// The PROXY protocol parser against HAProxy's specification: every valid form, every rule broken, the length limits
/// exactly, one below and one above, and each header cut at every byte: a prefix always needs more data, and the
/// header in two segments (or one byte per segment) parses as in one.
/// </summary>
[Trait("Tier", "unit")]
public class ProxyHeaderTests
{
    private const string After = "ECHO hi\r\n";

    public static TheoryData<string, string, int> ValidV1 => new()
    {
        { "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", "192.168.0.1:56324", 443 },
        { "PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n", "0.0.0.0:0", 65535 },
        { "PROXY TCP4 10.20.30.40 127.0.0.1 1 40000\r\n", "10.20.30.40:1", 40000 },
        { "PROXY TCP6 2001:db8::1 ::1 65535 40000\r\n", "[2001:db8::1]:65535", 40000 },
        { "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF 65535 65535\r\n", "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", 65535 },
        { "PROXY TCP6 ::ffff:127.0.0.1 :: 5 6\r\n", "[::ffff:127.0.0.1]:5", 6 },
    };

    [Theory]
    [MemberData(nameof(ValidV1))]
    public void A_version_1_header_gives_the_client_address(string header, string client, int destinationPort)
    {
        foreach (ReadOnlySequence<byte> input in Cuts(B(header + After)))
        {
            ProxyHeaderResult result = ProxyHeader.TryParse(input);
            Assert.Equal(ProxyHeaderStatus.Valid, result.Status);
            Assert.Equal(header.Length, result.Consumed);
            Assert.Equal(1, result.Header!.Version);
            Assert.Equal(ProxyCommand.Proxy, result.Header.Command);
            Assert.Equal(client, result.Header.Source!.ToString());
            Assert.Equal(destinationPort, ((IPEndPoint)result.Header.Destination!).Port);
        }

        AssertEveryPrefixNeedsMore(B(header));
    }

    [Theory]
    [InlineData("PROXY UNKNOWN\r\n")]
    [InlineData("PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n")]
    [InlineData("PROXY UNKNOWN anything at all, even  two  spaces\r\n")]
    public void Version_1_UNKNOWN_keeps_the_real_endpoints(string header)
    {
        foreach (ReadOnlySequence<byte> input in Cuts(B(header + After)))
        {
            ProxyHeaderResult result = ProxyHeader.TryParse(input);
            Assert.Equal(ProxyHeaderStatus.Valid, result.Status);
            Assert.Equal(header.Length, result.Consumed);
            Assert.Equal(ProxyCommand.Local, result.Header!.Command);
            Assert.Null(result.Header.Source);
        }

        AssertEveryPrefixNeedsMore(B(header));
    }

    [Theory]
    [InlineData("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n")] // two spaces
    [InlineData("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n")] // trailing space
    [InlineData("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n")] // a sixth field
    [InlineData("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n")] // a field missing
    [InlineData("PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n")] // a tab
    [InlineData("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n")]
    [InlineData("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n")] // lower case
    [InlineData("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n")]
    [InlineData("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n")]
    [InlineData("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n")]
    [InlineData("PROXY UNKNOWNX\r\n")]
    [InlineData("PROXY \r\n")]
    [InlineData("PROXY\r\n")]
    [InlineData("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n")] // leading zero in an octet
    [InlineData("PROXY TCP4 1.2.3.004 5.6.7.8 1 2\r\n")]
    [InlineData("PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n")]
    [InlineData("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n")]
    [InlineData("PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n")]
    [InlineData("PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n")]
    [InlineData("PROXY TCP4 1.2.3.4. 5.6.7.8 1 2\r\n")]
    [InlineData("PROXY TCP4 -1.2.3.4 5.6.7.8 1 2\r\n")]
    [InlineData("PROXY TCP4 0x7f.0.0.1 5.6.7.8 1 2\r\n")]
    [InlineData("PROXY TCP4 2130706433 5.6.7.8 1 2\r\n")] // one number: inet_aton would take it
    [InlineData("PROXY TCP4 ::1 5.6.7.8 1 2\r\n")] // IPv6 announced as TCP4
    [InlineData("PROXY TCP6 1.2.3.4 ::1 1 2\r\n")] // IPv4 announced as TCP6
    [InlineData("PROXY TCP6 ::1%lo ::1 1 2\r\n")] // a zone
    [InlineData("PROXY TCP6 [::1] ::1 1 2\r\n")]
    [InlineData("PROXY TCP6 1::2::3 ::1 1 2\r\n")]
    [InlineData("PROXY TCP6 12345::1 ::1 1 2\r\n")]
    [InlineData("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n")]
    [InlineData("PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n")]
    [InlineData("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n")] // leading zero in a port
    [InlineData("PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n")]
    [InlineData("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n")]
    [InlineData("PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n")]
    [InlineData("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n")] // a bare LF
    [InlineData("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX")] // a bare CR
    [InlineData("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n\r")]
    [InlineData("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n")]
    [InlineData("GET / HTTP/1.1\r\n")] // another protocol
    [InlineData("ECHO hi\r\n")]
    [InlineData("\r\n")] // the start of the v2 signature, then something else
    [InlineData("\r\n\r\n\0\r\nQUIT\r\n")]
    public void A_malformed_version_1_header_is_invalid(string header)
    {
        foreach (ReadOnlySequence<byte> input in Cuts(B(header + After)))
        {
            ProxyHeaderResult result = ProxyHeader.TryParse(input);
            Assert.Equal(ProxyHeaderStatus.Invalid, result.Status);
            Assert.NotNull(result.Error);
        }

        AssertPrefixesNeverValid(B(header));
    }

    [Fact]
    public void A_version_1_header_of_107_bytes_is_accepted_and_108_is_not()
    {
        string address = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        string longest = $"PROXY UNKNOWN {address} {address} 65535 65535\r\n";
        Assert.Equal(ProxyHeader.MaxV1Length, longest.Length);
        foreach (string header in new[] { longest, longest.Remove(20, 1) })
        {
            ProxyHeaderResult result = ProxyHeader.TryParse(Sequence(B(header)));
            Assert.Equal(ProxyHeaderStatus.Valid, result.Status);
            Assert.Equal(header.Length, result.Consumed);
        }

        // One byte more: no CRLF within the first 107 bytes.
        string tooLong = longest.Insert(20, "f");
        Assert.Equal(ProxyHeaderStatus.Invalid, ProxyHeader.TryParse(Sequence(B(tooLong))).Status);
        Assert.Equal(ProxyHeaderStatus.NeedMoreData, ProxyHeader.TryParse(Sequence(B(tooLong[..106]))).Status);
        Assert.Equal(ProxyHeaderStatus.Invalid, ProxyHeader.TryParse(Sequence(B(tooLong[..107]))).Status);
        Assert.Equal(ProxyHeaderStatus.Invalid, ProxyHeader.TryParse(Sequence(B("PROXY UNKNOWN " + new string('x', 200)))).Status);
    }

    [Fact]
    public void A_version_2_PROXY_header_over_IPv4_gives_the_client_address()
    {
        byte[] header = V2(0x21, 0x11, Ipv4Block("203.0.113.7", 51234, "127.0.0.1", 40000));
        ProxyHeader parsed = ParsesInEveryCut(header);
        Assert.Equal(2, parsed.Version);
        Assert.Equal(ProxyCommand.Proxy, parsed.Command);
        Assert.Equal("203.0.113.7:51234", parsed.Source!.ToString());
        Assert.Equal("127.0.0.1:40000", parsed.Destination!.ToString());
    }

    [Fact]
    public void A_version_2_PROXY_header_over_IPv6_gives_the_client_address()
    {
        byte[] block = [.. IPAddress.Parse("2001:db8::7").GetAddressBytes(), .. IPAddress.IPv6Loopback.GetAddressBytes(), 0xFF, 0xFF, 0x9C, 0x40];
        ProxyHeader parsed = ParsesInEveryCut(V2(0x21, 0x21, block));
        Assert.Equal("[2001:db8::7]:65535", parsed.Source!.ToString());
        Assert.Equal("[::1]:40000", parsed.Destination!.ToString());
    }

    [Fact]
    public void A_version_2_header_over_a_Unix_socket_gives_its_path()
    {
        byte[] block = new byte[216];
        Encoding.ASCII.GetBytes("/run/client.sock").CopyTo(block, 0);
        Encoding.ASCII.GetBytes("/run/tinyserver.sock").CopyTo(block, 108);
        ProxyHeader parsed = ParsesInEveryCut(V2(0x21, 0x31, block));
        Assert.Equal(ProxyCommand.Proxy, parsed.Command);
        Assert.Equal("/run/client.sock", Assert.IsType<UnixDomainSocketEndPoint>(parsed.Source).ToString());

        // An unnamed client socket has no path: the real endpoints stand.
        block[0] = 0;
        Assert.Equal(ProxyCommand.Local, ParsesInEveryCut(V2(0x21, 0x31, block)).Command);

        // A path must end within its 108 bytes.
        Array.Fill(block, (byte)'a', 0, 108);
        AssertInvalid(V2(0x21, 0x31, block));
    }

    [Theory]
    [InlineData(0x20, 0x00, 0)] // LOCAL, as HAProxy's health checks send it
    [InlineData(0x20, 0x11, 12)] // LOCAL with an address block, which is skipped
    [InlineData(0x20, 0x00, 5)] // LOCAL with bytes that are not an address block at all
    [InlineData(0x21, 0x00, 0)] // PROXY over AF_UNSPEC
    [InlineData(0x21, 0x00, 30)]
    [InlineData(0x21, 0x10, 12)] // an unspecified transport over IPv4
    [InlineData(0x21, 0x12, 12)] // UDP over IPv4: not a stream, the real endpoints stand
    [InlineData(0x21, 0x22, 36)]
    [InlineData(0x21, 0x32, 216)]
    public void A_version_2_header_without_a_usable_client_address_keeps_the_real_endpoints(byte versionCommand, byte familyTransport, int blockLength)
    {
        byte[] block = new byte[blockLength];
        Array.Fill(block, (byte)'x');
        ProxyHeader parsed = ParsesInEveryCut(V2(versionCommand, familyTransport, block));
        Assert.Equal(ProxyCommand.Local, parsed.Command);
        Assert.Null(parsed.Source);
    }

    [Fact]
    public void Version_2_TLVs_are_skipped_when_they_fill_the_header_exactly()
    {
        byte[] tlvs = [0x05, 0x00, 0x03, 1, 2, 3, 0x04, 0x00, 0x00, 0xE0, 0x00, 0x01, 9];
        ProxyHeader parsed = ParsesInEveryCut(V2(0x21, 0x11, [.. Ipv4Block("10.0.0.1", 1, "10.0.0.2", 2), .. tlvs]));
        Assert.Equal("10.0.0.1:1", parsed.Source!.ToString());
    }

    public static TheoryData<string, byte[]> InvalidV2 => new()
    {
        { "version 1 in the binary form", V2(0x11, 0x11, Ipv4Block("1.2.3.4", 1, "5.6.7.8", 2)) },
        { "version 3", V2(0x31, 0x11, Ipv4Block("1.2.3.4", 1, "5.6.7.8", 2)) },
        { "command 2", V2(0x22, 0x11, Ipv4Block("1.2.3.4", 1, "5.6.7.8", 2)) },
        { "command 15", V2(0x2F, 0x00, []) },
        { "family 4", V2(0x21, 0x41, new byte[12]) },
        { "transport 3", V2(0x21, 0x13, new byte[12]) },
        { "family 15 on LOCAL", V2(0x20, 0xF0, []) },
        { "IPv4 block of 11 bytes", V2(0x21, 0x11, new byte[11]) },
        { "IPv6 block of 35 bytes", V2(0x21, 0x21, new byte[35]) },
        { "Unix block of 215 bytes", V2(0x21, 0x31, new byte[215]) },
        { "a TLV header cut short", V2(0x21, 0x11, [.. Ipv4Block("1.2.3.4", 1, "5.6.7.8", 2), 0x04, 0x00]) },
        { "a TLV longer than the header", V2(0x21, 0x11, [.. Ipv4Block("1.2.3.4", 1, "5.6.7.8", 2), 0x04, 0x00, 0x02, 1]) },
        { "a signature with one byte wrong", [.. V2(0x21, 0x00, [])[..11], 0x0B, 0x21, 0x00, 0x00, 0x00] },
    };

    [Theory]
    [MemberData(nameof(InvalidV2))]
    public void A_malformed_version_2_header_is_invalid(string why, byte[] header)
    {
        Assert.NotEmpty(why);
        AssertInvalid(header);
    }

    [Fact]
    public void A_version_2_header_of_the_maximum_length_is_accepted_and_one_byte_more_is_not()
    {
        foreach (int length in new[] { ProxyHeader.MaxV2Length - 1, ProxyHeader.MaxV2Length })
        {
            byte[] header = V2(0x21, 0x11, [.. Ipv4Block("1.2.3.4", 1, "5.6.7.8", 2), .. Noop(length - 16 - 12)]);
            Assert.Equal(length, header.Length);
            Assert.Equal("1.2.3.4:1", ParsesInEveryCut(header).Source!.ToString());
        }

        // One more: rejected from the fixed part alone, without waiting for the rest.
        byte[] tooLong = V2(0x21, 0x11, [.. Ipv4Block("1.2.3.4", 1, "5.6.7.8", 2), .. Noop(ProxyHeader.MaxV2Length + 1 - 16 - 12)]);
        Assert.Equal(ProxyHeaderStatus.Invalid, ProxyHeader.TryParse(Sequence(tooLong[..16])).Status);
        AssertInvalid(tooLong);
    }

    [Fact]
    public void An_empty_buffer_needs_more_data() =>
        Assert.Equal(ProxyHeaderStatus.NeedMoreData, ProxyHeader.TryParse(ReadOnlySequence<byte>.Empty).Status);

    [Fact]
    public void Leading_empty_segments_are_read_through()
    {
        byte[] header = B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n");
        ProxyHeaderResult result = ProxyHeader.TryParse(Segment.Sequence([[], [], header[..3], [], header[3..]]));
        Assert.Equal(ProxyHeaderStatus.Valid, result.Status);
        Assert.Equal("1.2.3.4:1", result.Header!.Source!.ToString());
    }

    internal static byte[] V2(byte versionCommand, byte familyTransport, byte[] block)
    {
        byte[] header = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, versionCommand, familyTransport, 0, 0, .. block];
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(14), (ushort)block.Length);
        return header;
    }

    internal static byte[] Ipv4Block(string source, int sourcePort, string destination, int destinationPort)
    {
        byte[] block = [.. IPAddress.Parse(source).GetAddressBytes(), .. IPAddress.Parse(destination).GetAddressBytes(), 0, 0, 0, 0];
        BinaryPrimitives.WriteUInt16BigEndian(block.AsSpan(8), (ushort)sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(block.AsSpan(10), (ushort)destinationPort);
        return block;
    }

    // A PP2_TYPE_NOOP TLV of exactly `length` bytes, header included.
    private static byte[] Noop(int length)
    {
        byte[] tlv = new byte[length];
        tlv[0] = 0x04;
        BinaryPrimitives.WriteUInt16BigEndian(tlv.AsSpan(1), (ushort)(length - 3));
        return tlv;
    }

    private static ReadOnlySequence<byte> Sequence(byte[] bytes) => new(bytes);

    // The header followed by a request, in one segment, cut in two at every byte, and one byte per segment.
    private static IEnumerable<ReadOnlySequence<byte>> Cuts(byte[] input) => Splits(input).Select(Segment.Sequence);

    private static ProxyHeader ParsesInEveryCut(byte[] header)
    {
        ProxyHeader? first = null;
        foreach (ReadOnlySequence<byte> input in Cuts([.. header, .. B(After)]))
        {
            ProxyHeaderResult result = ProxyHeader.TryParse(input);
            Assert.Equal(ProxyHeaderStatus.Valid, result.Status);
            Assert.Equal(header.Length, result.Consumed);
            Assert.True(first is null || first == result.Header, "the same header however it is cut");
            first = result.Header;
        }

        AssertEveryPrefixNeedsMore(header);
        return first!;
    }

    private static void AssertInvalid(byte[] header)
    {
        foreach (ReadOnlySequence<byte> input in Cuts([.. header, .. B(After)]))
        {
            Assert.Equal(ProxyHeaderStatus.Invalid, ProxyHeader.TryParse(input).Status);
        }

        AssertPrefixesNeverValid(header);
    }

    private static void AssertEveryPrefixNeedsMore(byte[] header)
    {
        for (int length = 0; length < header.Length; length++)
        {
            foreach (ReadOnlySequence<byte> prefix in Splits(header[..length]).Select(Segment.Sequence))
            {
                Assert.Equal(ProxyHeaderStatus.NeedMoreData, ProxyHeader.TryParse(prefix).Status);
            }
        }
    }

    // A prefix of a bad header needs more data until the fault shows, and is invalid from then on.
    private static void AssertPrefixesNeverValid(byte[] header)
    {
        bool invalid = false;
        for (int length = 0; length <= header.Length; length++)
        {
            ProxyHeaderStatus status = ProxyHeader.TryParse(Sequence(header[..length])).Status;
            Assert.NotEqual(ProxyHeaderStatus.Valid, status);
            Assert.True(!invalid || status == ProxyHeaderStatus.Invalid, $"invalid at a shorter prefix, then {status} at {length} bytes");
            invalid = status == ProxyHeaderStatus.Invalid;
        }
    }
}
