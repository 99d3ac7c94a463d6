using System.Globalization;

namespace TinyServer.Tests.Properties;

/// <summary>
/// An independent reference model of protocol.md, written from the document alone (it calls nothing in
/// TinyServer.Protocol): the whole request stream in, the exact reply bytes out. It reads one byte at a time,
/// which is slow and obviously in stream order, so segmentation and output budgets cannot matter to it.
/// </summary>
/// <remarks>
/// Readings of protocol.md this model makes, where the text needs one:
/// <list type="bullet">
/// <item>Telnet commands are removed first (section 6); the partial line is the data bytes left after that.
/// <c>IAC EC</c> drops its last byte, <c>IAC IP</c> and <c>IAC EL</c> empty it.</item>
/// <item>Section 4: "as soon as the unfinished line can no longer end within the limit (more than the maximum
/// bytes, not counting one final CR)": the moment a data byte makes the partial line longer than the maximum
/// (a final CR not counted), the reply is <c>ERROR LINE_TOO_LONG</c> and the connection closes. Nothing after that
/// byte is looked at: no telnet command after it is answered, and no later <c>IAC EC</c> can take it back.</item>
/// <item>At end of input (half-close) the partial line, one final CR dropped, is a last line if it holds at least
/// one byte after telnet processing. Input that ends right after an LF, or whose last partial line was erased
/// (<c>IAC EL</c>) or consisted only of telnet commands, holds no further line. An unfinished telnet command at the
/// end of input is dropped.</item>
/// </list>
/// </remarks>
public static class ReferenceModel
{
    private const byte Lf = 0x0A;
    private const byte Cr = 0x0D;
    private const byte Sp = 0x20;
    private const byte Iac = 255;
    private const byte Dont = 254;
    private const byte Do = 253;
    private const byte Wont = 252;
    private const byte Will = 251;
    private const byte Sb = 250;
    private const byte El = 248;
    private const byte Ec = 247;
    private const byte Ip = 244;
    private const byte Se = 240;

    /// <summary>Why the server closes the connection.</summary>
    public enum Close
    {
        /// <summary>It does not: the connection stays open, waiting for more input.</summary>
        None,
        Quit,
        LineTooLong,
        EndOfInput,
    }

    /// <param name="Output">The replies, telnet refusals included, in order.</param>
    /// <param name="Close">Whether and why the server closes.</param>
    public sealed record Outcome(byte[] Output, Close Close)
    {
        public bool Closed => Close != Close.None;
    }

    private enum Telnet
    {
        Data,
        Command,
        Option,
        Subnegotiation,
        SubnegotiationIac,
    }

    /// <summary>The server's replies to <paramref name="input"/>, after the banner.</summary>
    /// <param name="input">Every byte the client sends.</param>
    /// <param name="halfClose">The client shuts down its sending side after the last byte.</param>
    /// <param name="maxLineLength">The server's maximum line length.</param>
    /// <param name="now">The server's local time, for TIME.</param>
    public static Outcome Run(ReadOnlySpan<byte> input, bool halfClose, int maxLineLength, DateTimeOffset now)
    {
        byte[] timeReply = Ascii("TIME " + now.ToString("yyyy-MM-dd'T'HH:mm:sszzz", CultureInfo.InvariantCulture) + "\n");
        var output = new List<byte>();
        var line = new List<byte>();
        Telnet state = Telnet.Data;
        byte verb = 0;

        for (int at = 0; at < input.Length; at++)
        {
            byte b = input[at];
            switch (state)
            {
                case Telnet.Data when b == Iac:
                    state = Telnet.Command;
                    break;
                case Telnet.Data when b == Lf:
                    if (Answer(DropFinalCr(line), output, timeReply))
                    {
                        return new Outcome([.. output], Close.Quit);
                    }

                    line.Clear();
                    break;
                case Telnet.Data:
                    if (!AppendData(line, b, maxLineLength, output))
                    {
                        return new Outcome([.. output], Close.LineTooLong);
                    }

                    break;
                case Telnet.Command:
                    state = Telnet.Data;
                    switch (b)
                    {
                        case Iac:
                            if (!AppendData(line, Iac, maxLineLength, output))
                            {
                                return new Outcome([.. output], Close.LineTooLong);
                            }

                            break;
                        case Do or Dont or Will or Wont:
                            verb = b;
                            state = Telnet.Option;
                            break;
                        case Sb:
                            state = Telnet.Subnegotiation;
                            break;
                        case Ip or El:
                            line.Clear();
                            break;
                        case Ec:
                            if (line.Count > 0)
                            {
                                line.RemoveAt(line.Count - 1);
                            }

                            break;
                        default:
                            break; // NOP, DM, BRK, AO, AYT, GA, a stray SE, anything else: removed.
                    }

                    break;
                case Telnet.Option:
                    state = Telnet.Data;
                    if (verb == Do)
                    {
                        output.AddRange([Iac, Wont, b]);
                    }
                    else if (verb == Will)
                    {
                        output.AddRange([Iac, Dont, b]);
                    }

                    break;
                case Telnet.Subnegotiation:
                    if (b == Iac)
                    {
                        state = Telnet.SubnegotiationIac;
                    }

                    break;
                case Telnet.SubnegotiationIac:
                    state = b == Se ? Telnet.Data : Telnet.Subnegotiation;
                    break;
            }
        }

        if (!halfClose)
        {
            return new Outcome([.. output], Close.None);
        }

        if (line.Count > 0 && Answer(DropFinalCr(line), output, timeReply))
        {
            return new Outcome([.. output], Close.Quit);
        }

        return new Outcome([.. output], Close.EndOfInput);
    }

    /// <summary>Adds a data byte to the partial line; false (after writing the error) when it makes it too long.</summary>
    private static bool AppendData(List<byte> line, byte b, int maxLineLength, List<byte> output)
    {
        line.Add(b);
        int withoutFinalCr = b == Cr ? line.Count - 1 : line.Count;
        if (withoutFinalCr > maxLineLength)
        {
            output.AddRange(Ascii("ERROR LINE_TOO_LONG\n"));
            return false;
        }

        return true;
    }

    private static byte[] DropFinalCr(List<byte> line) =>
        line.Count > 0 && line[^1] == Cr ? [.. line.Take(line.Count - 1)] : [.. line];

    /// <summary>Writes the reply to one request line; true when the connection closes after it (QUIT).</summary>
    private static bool Answer(byte[] line, List<byte> output, byte[] timeReply)
    {
        int space = Array.IndexOf(line, Sp);
        byte[] word = space < 0 ? line : line[..space];
        byte[]? arguments = space < 0 ? null : line[(space + 1)..];
        bool noArguments = arguments is null || arguments.All(b => b == Sp);

        if (WordIs(word, "ECHO"))
        {
            if (noArguments)
            {
                output.AddRange(Ascii("ERROR BAD_ARGUMENTS\n"));
                return false;
            }

            output.AddRange(Ascii("ECHO "));
            foreach (byte b in arguments!)
            {
                output.Add(b);
                if (b == Iac)
                {
                    output.Add(Iac); // A data byte 255 goes out as IAC IAC.
                }
            }

            output.Add(Lf);
            return false;
        }

        if (WordIs(word, "TIME") || WordIs(word, "HELP") || WordIs(word, "QUIT"))
        {
            if (!noArguments)
            {
                output.AddRange(Ascii("ERROR BAD_ARGUMENTS\n"));
                return false;
            }

            if (WordIs(word, "TIME"))
            {
                output.AddRange(timeReply);
                return false;
            }

            if (WordIs(word, "HELP"))
            {
                output.AddRange(Ascii("HELP TIME | ECHO <text> | HELP | QUIT\n"));
                return false;
            }

            output.AddRange(Ascii("BYE\n"));
            return true;
        }

        output.AddRange(Ascii("ERROR UNKNOWN_COMMAND\n"));
        return false;
    }

    /// <summary>ASCII-case-insensitive: only the letters A-Z and a-z fold into each other.</summary>
    private static bool WordIs(byte[] word, string upper)
    {
        if (word.Length != upper.Length)
        {
            return false;
        }

        for (int i = 0; i < word.Length; i++)
        {
            byte b = word[i];
            byte folded = b is >= (byte)'a' and <= (byte)'z' ? (byte)(b - 32) : b;
            if (folded != upper[i])
            {
                return false;
            }
        }

        return true;
    }

    private static byte[] Ascii(string text) => [.. text.Select(c => (byte)c)];
}
