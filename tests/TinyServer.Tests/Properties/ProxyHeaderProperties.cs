using System.Buffers;
using System.Net;
using System.Text;
using CsCheck;
using TinyServer.Protocol;
using TinyServer.Tests.Protocol;

namespace TinyServer.Tests.Properties;

/// <summary>
/// Property and fuzz-style tests of <see cref="ProxyHeader.TryParse"/>: random addresses round-trip through both
/// versions; random bytes, and valid headers with bytes changed, cut in, or cut off, never make it throw, and it
/// answers the same however the bytes are segmented.
/// </summary>
[Trait("Tier", "unit")]
public sealed class ProxyHeaderProperties
{
    private static readonly long Iterations =
        Environment.GetEnvironmentVariable("CsCheck_Iter") is null && Environment.GetEnvironmentVariable("CsCheck_Time") is null ? 5_000 : -1;

    private static readonly Gen<(IPEndPoint Source, IPEndPoint Destination)> SameFamilyPair =
        Gen.Select(Gen.Bool, Gen.Byte.Array[16], Gen.Byte.Array[16], Gen.Int[0, 65535], Gen.Int[0, 65535], (v4, a, b, sourcePort, destinationPort) =>
            (new IPEndPoint(new IPAddress(v4 ? a[..4] : a), sourcePort), new IPEndPoint(new IPAddress(v4 ? b[..4] : b), destinationPort)));

    /// <summary>Valid headers of both versions, and sometimes bytes after them.</summary>
    private static readonly Gen<byte[]> ValidHeader =
        Gen.Select(SameFamilyPair, Gen.Bool, Gen.Byte.Array[0, 8], (pair, v1, after) => (byte[])[.. v1 ? V1(pair.Source, pair.Destination) : V2(pair.Source, pair.Destination), .. after]);

    /// <summary>Valid headers with bytes changed, inserted or removed; near-headers; and plain random bytes.</summary>
    private static readonly Gen<byte[]> Garbled = Gen.OneOf(
        Gen.Select(ValidHeader, Gen.Int[0, 200], Gen.Byte, Gen.Int[0, 2], (header, at, value, how) => Garble(header, at % Math.Max(1, header.Length), value, how)),
        Gen.Select(Gen.OneOf(Gen.Const("PROXY "u8.ToArray()), Gen.Const("PROXY TCP4 "u8.ToArray()), Gen.Const("PROXY TCP6 "u8.ToArray()), Gen.Const(ProxyHeaderTests.V2(0x21, 0x11, [])[..14])),
            Gen.Byte.Array[0, 120], (prefix, tail) => (byte[])[.. prefix, .. tail]),
        Gen.Byte.Array[0, 64]);

    [Fact]
    public void Any_address_round_trips_through_both_versions() =>
        SameFamilyPair.Sample(pair =>
        {
            foreach (byte[] header in new[] { V1(pair.Source, pair.Destination), V2(pair.Source, pair.Destination) })
            {
                ProxyHeaderResult result = ProxyHeader.TryParse(new ReadOnlySequence<byte>(header));
                if (result.Status != ProxyHeaderStatus.Valid || result.Consumed != header.Length
                    || !pair.Source.Equals(result.Header!.Source) || !pair.Destination.Equals(result.Header.Destination))
                {
                    throw new PropertyFailure($"{pair.Source} -> {pair.Destination}: {result}");
                }
            }
        }, iter: Iterations);

    [Fact]
    public void Garbled_input_never_throws_and_does_not_depend_on_segmentation() =>
        Gen.OneOf(ValidHeader, Garbled).Sample(Consistent, iter: Iterations, print: bytes => Literal.Of(bytes));

    private static void Consistent(byte[] input)
    {
        ProxyHeaderResult whole = ProxyHeader.TryParse(new ReadOnlySequence<byte>(input));
        if (whole.Status == ProxyHeaderStatus.Valid && (whole.Consumed <= 0 || whole.Consumed > input.Length))
        {
            throw new PropertyFailure($"consumed {whole.Consumed} of {input.Length}");
        }

        for (int cut = 0; cut <= input.Length; cut++)
        {
            ProxyHeaderResult split = ProxyHeader.TryParse(Segment.Sequence([input[..cut], input[cut..]]));
            if (split.Status != whole.Status || split.Consumed != whole.Consumed || split.Header != whole.Header)
            {
                throw new PropertyFailure($"cut at {cut}: {split}, in one piece: {whole}");
            }

            // What arrives later cannot turn an invalid prefix valid, nor change a valid header.
            ProxyHeaderResult prefix = ProxyHeader.TryParse(new ReadOnlySequence<byte>(input, 0, cut));
            bool agrees = prefix.Status switch
            {
                ProxyHeaderStatus.Invalid => whole.Status == ProxyHeaderStatus.Invalid,
                ProxyHeaderStatus.Valid => whole.Status == ProxyHeaderStatus.Valid && prefix.Consumed == whole.Consumed && prefix.Header == whole.Header,
                _ => whole.Status != ProxyHeaderStatus.Valid || cut < whole.Consumed,
            };
            if (!agrees)
            {
                throw new PropertyFailure($"the first {cut} bytes: {prefix}; all {input.Length}: {whole}");
            }
        }
    }

    private static byte[] V1(IPEndPoint source, IPEndPoint destination)
    {
        string protocol = source.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? "TCP4" : "TCP6";
        return Encoding.ASCII.GetBytes($"PROXY {protocol} {source.Address} {destination.Address} {source.Port} {destination.Port}\r\n");
    }

    private static byte[] V2(IPEndPoint source, IPEndPoint destination)
    {
        bool v4 = source.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork;
        byte[] ports = [(byte)(source.Port >> 8), (byte)source.Port, (byte)(destination.Port >> 8), (byte)destination.Port];
        return ProxyHeaderTests.V2(0x21, v4 ? (byte)0x11 : (byte)0x21, [.. source.Address.GetAddressBytes(), .. destination.Address.GetAddressBytes(), .. ports]);
    }

    private static byte[] Garble(byte[] header, int at, byte value, int how)
    {
        List<byte> bytes = [.. header];
        switch (how)
        {
            case 0:
                bytes[at] = value;
                break;
            case 1:
                bytes.Insert(at, value);
                break;
            default:
                bytes.RemoveAt(at);
                break;
        }

        return [.. bytes];
    }
}
