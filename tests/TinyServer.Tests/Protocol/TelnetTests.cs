using static TinyServer.Tests.Protocol.ProtocolHarness;

namespace TinyServer.Tests.Protocol;

/// <summary>Telnet IAC sequences are removed before parsing; every option is refused.</summary>
[Trait("Tier", "unit")]
public class TelnetTests
{
    private const string Iac = "\xff";
    private const string Time = FixedTime.Expected + "\n";

    public static TheoryData<string, string> Scripts => new()
    {
        // DO x -> WONT x; WILL x -> DONT x; DONT and WONT need no answer.
        { Iac + "\xfd\x01TIME\n", Iac + "\xfc\x01" + Time },
        { Iac + "\xfb\x03TIME\n", Iac + "\xfe\x03" + Time },
        { Iac + "\xfe\x01" + Iac + "\xfc\x03TIME\n", Time },
        { "TI" + Iac + "\xfd\x18ME\n", Iac + "\xfc\x18" + Time },

        // Ctrl-C: IAC IP discards the partial line; DO TIMING-MARK is refused at once.
        { "garbage" + Iac + "\xf4" + Iac + "\xfd\x06", Iac + "\xfc\x06" },
        { "garbage" + Iac + "\xf4" + Iac + "\xfd\x06TIME\n", Iac + "\xfc\x06" + Time },
        { "ECHO x" + Iac + "\xf4\n", "ERROR UNKNOWN_COMMAND\n" },

        // Erase line, erase character; NOP, DM, AYT, GA, BRK and AO carry no data.
        { "junk" + Iac + "\xf8TIME\n", Time },
        { "TIMEX" + Iac + "\xf7\n", Time },
        { Iac + "\xf7TIME\n", Time },
        { "T" + Iac + "\xf1I" + Iac + "\xf2M" + Iac + "\xf6" + "E" + Iac + "\xf9" + Iac + "\xf3" + Iac + "\xf5\n", Time },

        // Subnegotiation is skipped whole, IAC IAC inside it included.
        { Iac + "\xfa\x18\x01" + Iac + "\xf0TIME\n", Time },
        { Iac + "\xfa\x18" + Iac + Iac + "\n\n" + Iac + "\xf0TIME\n", Time },

        // IAC IAC is the data byte 255; the reply doubles it again.
        { "ECHO a" + Iac + Iac + "b\n", "ECHO a" + Iac + Iac + "b\n" },
        { "ECHO " + Iac + Iac + "\n", "ECHO " + Iac + Iac + "\n" },

        // CRLF split by a command still ends the line.
        { "TIME\r" + Iac + "\xf1\n", Time },
    };

    [Theory]
    [MemberData(nameof(Scripts))]
    public void Telnet_commands_are_removed_and_options_refused(string script, string expected)
    {
        foreach (byte[][] chunks in Splits(B(script)))
        {
            Result result = Run(chunks, halfClose: false);
            Assert.Equal(expected, result.Output);
        }
    }

    [Fact]
    public void An_unfinished_command_at_the_end_of_input_is_dropped()
    {
        Result result = Run([B("TIME\n" + Iac)], halfClose: true);
        Assert.Equal(Time, result.Output);
        Assert.True(result.Closed);
    }
}
