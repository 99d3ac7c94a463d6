using System.Text;
using TinyServer.Tests.Protocol;

namespace TinyServer.Tests.Properties;

/// <summary>The reference model itself, on the examples and rules of protocol.md (it is only as good as these).</summary>
[Trait("Tier", "unit")]
public class ReferenceModelTests
{
    private const string Time = FixedTime.Expected + "\n";
    private const string Iac = "\u00ff";

    public static TheoryData<string, bool, int, string, string> Examples => new()
    {
        // Section 7, the conversation (the banner is the host's).
        {
            "TIME\necho  Hello,   world!  \nhelp\nECHO\nTIME please\nPING\n\nQUIT\n", false, 16384,
            Time + "ECHO  Hello,   world!  \nHELP TIME | ECHO <text> | HELP | QUIT\nERROR BAD_ARGUMENTS\nERROR BAD_ARGUMENTS\n"
            + "ERROR UNKNOWN_COMMAND\nERROR UNKNOWN_COMMAND\nBYE\n", "Quit"
        },

        // Pipelined, with a line after QUIT; half-close with a last line without LF.
        { "ECHO 1\nECHO 2\nQUIT\nTIME\n", false, 16384, "ECHO 1\nECHO 2\nBYE\n", "Quit" },
        { "TIME\nECHO last", true, 16384, Time + "ECHO last\n", "EndOfInput" },
        { "TIME\n", true, 16384, Time, "EndOfInput" },
        { "ECHO last\r", true, 16384, "ECHO last\n", "EndOfInput" },
        { "\r", true, 16384, "ERROR UNKNOWN_COMMAND\n", "EndOfInput" },

        // Section 3: spaces, case, arguments, the command word.
        { "tImE  \nTIME now\nTIME\tx\n TIME\nQUIT x\nHELP \n", false, 16384, Time + "ERROR BAD_ARGUMENTS\nERROR UNKNOWN_COMMAND\nERROR UNKNOWN_COMMAND\nERROR BAD_ARGUMENTS\nHELP TIME | ECHO <text> | HELP | QUIT\n", "None" },
        { "ECHO \nECHO    \nECHO  a \nECHO a\0b\rc\n", false, 16384, "ERROR BAD_ARGUMENTS\nERROR BAD_ARGUMENTS\nECHO  a \nECHO a\0b\rc\n", "None" },

        // Section 4: line endings and the limit.
        { "TIME\r\nECHO a\r\r\n", false, 16384, Time + "ECHO a\r\n", "None" },
        { "TIME\nHELP\n", false, 4, Time + "HELP TIME | ECHO <text> | HELP | QUIT\n", "None" },
        { "TIME\r\n", false, 4, Time, "None" },
        { "TIME\r", false, 4, "", "None" },
        { "TIMEX\n", false, 4, "ERROR LINE_TOO_LONG\n", "LineTooLong" },
        { "TIMEX", false, 4, "ERROR LINE_TOO_LONG\n", "LineTooLong" },
        { "TIME\r\r", false, 4, "ERROR LINE_TOO_LONG\n", "LineTooLong" },
        { "TIMEXHELP\n", false, 4, "ERROR LINE_TOO_LONG\n", "LineTooLong" },

        // Section 6: telnet.
        { Iac + "\u00fd\u0001" + Iac + "\u00fb\u0003" + Iac + "\u00fe\u0001" + Iac + "\u00fc\u0003TIME\n", false, 16384, Iac + "\u00fc\u0001" + Iac + "\u00fe\u0003" + Time, "None" },
        { "garbage" + Iac + "\u00f4" + Iac + "\u00fd\u0006TIME\n", false, 16384, Iac + "\u00fc\u0006" + Time, "None" },
        { "junk" + Iac + "\u00f8TIMEX" + Iac + "\u00f7\n", false, 16384, Time, "None" },
        { "T" + Iac + "\u00f1IM" + Iac + "\u00fa\u0018\n" + Iac + Iac + Iac + "\u00f0E\r" + Iac + "\u00f2\n", false, 16384, Time, "None" },
        { "ECHO a" + Iac + Iac + "b\n", false, 16384, "ECHO a" + Iac + Iac + "b\n", "None" },
        { "TIME\n" + Iac, true, 16384, Time, "EndOfInput" },
        { "TIME\n" + Iac + "\u00f1", true, 16384, Time, "EndOfInput" },
        { "TIME" + Iac + Iac + "\n", false, 4, "ERROR LINE_TOO_LONG\n", "LineTooLong" },
        { "TIME\r" + Iac + "\u00f7\n", false, 4, Time, "None" },
    };

    [Theory]
    [MemberData(nameof(Examples))]
    public void The_model_follows_protocol_md(string input, bool halfClose, int maxLineLength, string expected, string close)
    {
        ReferenceModel.Outcome outcome = ReferenceModel.Run(Encoding.Latin1.GetBytes(input), halfClose, maxLineLength, new FixedTime().GetLocalNow());
        Assert.Equal(expected, Encoding.Latin1.GetString(outcome.Output));
        Assert.Equal(close, outcome.Close.ToString());
    }

    [Theory]
    [InlineData(0, "+00:00")]
    [InlineData(-210, "-03:30")]
    [InlineData(345, "+05:45")]
    public void The_model_writes_a_numeric_offset(int minutes, string offset)
    {
        var time = new FixedTime(TimeSpan.FromMinutes(minutes));
        ReferenceModel.Outcome outcome = ReferenceModel.Run("TIME\n"u8, false, 16, time.GetLocalNow());
        Assert.EndsWith(offset + "\n", Encoding.Latin1.GetString(outcome.Output), StringComparison.Ordinal);
    }
}
