using System.Globalization;
using System.Text;
using CsCheck;

namespace TinyServer.Tests.Properties;

/// <summary>What a piece of the request stream is, for building it and for printing it readably.</summary>
public enum PieceKind
{
    /// <summary>Data bytes as the server should see them after telnet processing: a 255 is sent as IAC IAC.</summary>
    Text,

    /// <summary>A telnet command, sent as is.</summary>
    Telnet,

    /// <summary>Arbitrary bytes, sent as is (a lone IAC, an LF, anything).</summary>
    Raw,
}

public sealed record Piece(PieceKind Kind, byte[] Bytes)
{
    /// <summary>The bytes on the wire.</summary>
    public IEnumerable<byte> Wire => Kind == PieceKind.Text
        ? Bytes.SelectMany(b => b == 255 ? new byte[] { 255, 255 } : [b])
        : Bytes;

    public override string ToString() => Kind switch
    {
        PieceKind.Text => Literal.Of(Bytes),
        PieceKind.Telnet => "<" + TelnetName(Bytes) + ">",
        _ => "raw" + Literal.Of(Bytes),
    };

    private static string TelnetName(byte[] bytes)
    {
        var words = new List<string>();
        for (int i = 0; i < bytes.Length; i++)
        {
            words.Add(bytes[i] switch
            {
                255 => "IAC",
                254 => "DONT",
                253 => "DO",
                252 => "WONT",
                251 => "WILL",
                250 => "SB",
                249 => "GA",
                248 => "EL",
                247 => "EC",
                246 => "AYT",
                245 => "AO",
                244 => "IP",
                243 => "BRK",
                242 => "DM",
                241 => "NOP",
                240 => "SE",
                byte b => $"0x{b:x2}",
            });
        }

        return string.Join(' ', words);
    }
}

/// <summary>One generated conversation: the request stream, how it is cut, and how the session is set up.</summary>
public sealed record Case(Piece[] Pieces, int[] ChunkPlan, int MaxLineLength, int OutputBudget, bool HalfClose, int OffsetMinutes)
{
    /// <summary>The bytes on the wire (computed: a <c>with</c> copy must not keep a stale stream).</summary>
    public byte[] Stream => [.. Pieces.SelectMany(p => p.Wire)];

    public TimeSpan Offset => TimeSpan.FromMinutes(OffsetMinutes);

    /// <summary>The stream cut by <see cref="ChunkPlan"/>, applied cyclically (a 0 is an empty segment).</summary>
    public byte[][] Chunks
    {
        get
        {
            byte[] stream = Stream;
            var chunks = new List<byte[]>();
            int at = 0;
            int step = 0;
            int empties = 0;
            while (at < stream.Length)
            {
                int size = Math.Min(ChunkPlan[step++ % ChunkPlan.Length], stream.Length - at);
                if (size == 0 && ++empties > ChunkPlan.Length)
                {
                    size = 1; // A plan of zeros alone would never end.
                }

                chunks.Add(stream[at..(at + size)]);
                at += size;
            }

            return [.. chunks];
        }
    }

    public override string ToString()
    {
        var text = new StringBuilder();
        string budget = OutputBudget == int.MaxValue ? "unlimited" : OutputBudget.ToString(CultureInfo.InvariantCulture);
        text.Append(CultureInfo.InvariantCulture,
            $"maxLineLength: {MaxLineLength}, outputBudget: {budget}, halfClose: {HalfClose}, clock offset: {OffsetMinutes} min");
        text.Append("\n  pieces: ").AppendJoin(' ', Pieces.Select(p => p.ToString()));
        text.Append("\n  chunks (Latin-1): [").AppendJoin(", ", Chunks.Select(Literal.Of)).Append(']');
        return text.ToString();
    }
}

/// <summary>Bytes as a C# string literal (Latin-1, non-printables as \u00XX), so a case can be pasted into a test.</summary>
public static class Literal
{
    public static string Of(IEnumerable<byte> bytes)
    {
        var text = new StringBuilder("\"");
        foreach (byte b in bytes)
        {
            text.Append(b switch
            {
                (byte)'\n' => "\\n",
                (byte)'\r' => "\\r",
                (byte)'\t' => "\\t",
                0 => "\\0",
                (byte)'"' => "\\\"",
                (byte)'\\' => "\\\\",
                >= 0x20 and < 0x7F => ((char)b).ToString(),
                _ => $"\\u{b:x4}",
            });
        }

        return text.Append('"').ToString();
    }
}

/// <summary>CsCheck generators for request streams. Small maximum line lengths make over-long lines common.</summary>
public static class ProtocolGen
{
    private static readonly Gen<byte[]> NoBytes = Gen.Const(Array.Empty<byte>());

    /// <summary>Mostly 16 to 64; sometimes tiny, where even <c>TIME</c> is near the limit.</summary>
    public static readonly Gen<int> MaxLineLength = Gen.Frequency(
        (1, Gen.Int[1, 15]),
        (9, Gen.Int[16, 64]));

    /// <summary>A command word: the four commands in random letter case, near misses, junk, nothing.</summary>
    public static readonly Gen<byte[]> Word = Gen.Frequency(
        (12, Gen.Select(Gen.OneOf("TIME", "ECHO", "HELP", "QUIT"), Gen.Int[0, 15], RandomCase)),
        (2, Gen.OneOf("", "TIM", "ECH", "TIMES", "QUITT", "HELP\t", "TIME\t", " TIME", "ECHO\0", "ECH\u00cf", "\u00ff")
            .Select(Latin1)),
        (2, Gen.Byte[(byte)'A', (byte)'z'].Array[1, 6]));

    /// <summary>A byte of an argument: letters, spaces, NUL, CR, tab, 255 (sent as IAC IAC), high bytes. No LF.</summary>
    public static readonly Gen<byte> ArgumentByte = Gen.Frequency(
        (12, Gen.Byte[(byte)'a', (byte)'z']),
        (2, Gen.Byte[(byte)'A', (byte)'Z']),
        (4, Gen.Const((byte)' ')),
        (1, Gen.OneOf<byte>(0x00, 0x0D, 0x09, 0xF0, 0xFD)),
        (1, Gen.Const((byte)0xFF)),
        (1, Gen.Byte[0x80, 0xFF]),
        (1, Gen.Byte[0x00, 0x1F].Where(b => b != 0x0A)));

    /// <summary>A telnet command, as the bytes on the wire.</summary>
    public static readonly Gen<byte[]> TelnetCommand = Gen.Frequency(
        (4, Gen.Select(Gen.OneOf<byte>(253, 254, 251, 252), OptionByte(), (verb, option) => new byte[] { 255, verb, option })),
        (3, Gen.OneOf<byte>(247, 247, 248, 244).Select(c => new byte[] { 255, c })),
        (2, Gen.OneOf<byte>(241, 242, 243, 245, 246, 249, 240).Select(c => new byte[] { 255, c })),
        (1, Gen.Select(OptionByte(), Gen.Byte.Array[0, 6], (option, body) =>
            new byte[] { 255, 250, option }.Concat(body.SelectMany(b => b == 255 ? new byte[] { 255, 255 } : [b])).Concat(new byte[] { 255, 240 }).ToArray())),
        (1, Gen.Byte.Select(b => new byte[] { 255, b })));

    /// <summary>The line ending; sometimes none or a CR alone, which run the line into the next.</summary>
    public static readonly Gen<byte[]> Ending = Gen.Frequency(
        (6, Gen.Const("\n"u8.ToArray())),
        (4, Gen.Const("\r\n"u8.ToArray())),
        (1, Gen.Const("\r\r\n"u8.ToArray())),
        (1, Gen.Const("\r"u8.ToArray())),
        (1, NoBytes));

    /// <summary>How an unfinished last line ends, if the stream has one.</summary>
    public static readonly Gen<byte[]> UnfinishedEnding = Gen.OneOf(NoBytes, Gen.Const("\r"u8.ToArray()), Gen.Const("\r\r"u8.ToArray()));

    /// <summary>Cut sizes, applied cyclically: the whole stream at once, a byte at a time, or random cuts.</summary>
    public static readonly Gen<int[]> ChunkPlan = Gen.Frequency(
        (1, Gen.Const(new[] { int.MaxValue })),
        (1, Gen.Const(new[] { 1 })),
        (5, Gen.Frequency((1, Gen.Const(0)), (8, Gen.Int[1, 24]), (1, Gen.Int[25, 200])).Array[1, 12]));

    public static readonly Gen<int> OutputBudget = Gen.Frequency(
        (2, Gen.Const(int.MaxValue)),
        (3, Gen.Int[1, 48]));

    /// <summary>UTC offsets in quarter hours, -14:00 to +14:00 (0 included: it must print +00:00).</summary>
    public static readonly Gen<int> OffsetMinutes = Gen.Int[-56, 56].Select(q => q * 15);

    public static readonly Gen<Case> Case =
        from max in MaxLineLength
        from items in Item(max).Array[0, 12]
        from last in Gen.Frequency((2, Gen.Const(Array.Empty<Piece>())), (1, Line(max, UnfinishedEnding)))
        from plan in ChunkPlan
        from budget in OutputBudget
        from halfClose in Gen.Bool
        from offset in OffsetMinutes
        select new Case([.. items.SelectMany(i => i), .. last], plan, max, budget, halfClose, offset);

    /// <summary>A request line (possibly with telnet commands inside) or, now and then, raw junk.</summary>
    public static Gen<Piece[]> Item(int max) => Gen.Frequency(
        (10, Line(max)),
        (1, Gen.Byte.Array[1, 8].Select(bytes => new[] { new Piece(PieceKind.Raw, bytes) })));

    public static Gen<Piece[]> Line(int max) => Line(max, Ending);

    /// <summary>A command word, arguments, an ending, and up to two telnet commands anywhere in them.</summary>
    public static Gen<Piece[]> Line(int max, Gen<byte[]> endings) =>
        from word in Word
        from arguments in Arguments(max)
        from fit in Gen.Frequency((12, Gen.Const((int?)null)), (1, Gen.Int[-1, 1].Select(d => (int?)d)))
        from ending in endings
        from inserts in Gen.Select(Gen.Int[0, 1000], TelnetCommand).Array[0, 2]
        select Build([.. Fit([.. word, .. arguments], max + fit), .. ending], inserts);

    /// <summary>What follows the command word: nothing, spaces, text, or text of about the line limit or more.</summary>
    public static Gen<byte[]> Arguments(int max) => Gen.Frequency(
        (5, NoBytes),
        (2, Gen.Int[1, 3].Select(n => Enumerable.Repeat((byte)' ', n).ToArray())),
        (7, ArgumentByte.Array[1, 12].Select(text => new byte[] { (byte)' ' }.Concat(text).ToArray())),
        (1, Gen.Int[Math.Max(0, max - 9), max + 2].SelectMany(n => ArgumentByte.Array[n]).Select(text => new byte[] { (byte)' ' }.Concat(text).ToArray())),
        (1, Gen.Int[max, 3 * max].Select(n => Enumerable.Repeat((byte)'x', n).Prepend((byte)' ').ToArray())));

    /// <summary>Cuts or pads (with x) a line to <paramref name="length"/> bytes: the limit's edge, where bugs live.</summary>
    private static byte[] Fit(byte[] line, int? length) => length switch
    {
        null => line,
        int n when n <= line.Length => line[..Math.Max(0, n)],
        int n => [.. line, .. Enumerable.Repeat((byte)'x', n - line.Length)],
    };

    /// <summary>The line's data cut at the insert positions (per mille of its length), a telnet command in each cut.</summary>
    private static Piece[] Build(byte[] data, (int PerMille, byte[] Command)[] inserts)
    {
        var pieces = new List<Piece>();
        int at = 0;
        foreach ((int perMille, byte[] command) in inserts.OrderBy(i => i.PerMille))
        {
            int cut = Math.Max(at, (int)((long)perMille * data.Length / 1000));
            if (cut > at)
            {
                pieces.Add(new Piece(PieceKind.Text, data[at..cut]));
            }

            pieces.Add(new Piece(PieceKind.Telnet, command));
            at = cut;
        }

        if (at < data.Length)
        {
            pieces.Add(new Piece(PieceKind.Text, data[at..]));
        }

        return [.. pieces];
    }

    private static Gen<byte> OptionByte() => Gen.Frequency(
        (4, Gen.Byte[0, 40]),
        (1, Gen.OneOf<byte>(0x0A, 0x0D, 0xFF, 0xF0)),
        (1, Gen.Byte));

    private static byte[] RandomCase(string word, int lowerMask) =>
        [.. word.Select((c, i) => (byte)((lowerMask & (1 << i)) != 0 ? char.ToLowerInvariant(c) : c))];

    private static byte[] Latin1(string text) => Encoding.Latin1.GetBytes(text);
}
