using System.Buffers;
using TinyServer.Protocol;
using static TinyServer.Tests.Protocol.ProtocolHarness;

namespace TinyServer.Tests.Protocol;

/// <summary>
/// The protocol contract, one request script at a time. Every script is replayed whole, cut in two at every
/// byte, and one byte at a time: the replies must not depend on how the bytes arrive.
/// </summary>
[Trait("Tier", "unit")]
public class SessionTests
{
    private const string Help = "HELP TIME | ECHO <text> | HELP | QUIT\n";
    private const string Time = FixedTime.Expected + "\n";
    private const string Unknown = "ERROR UNKNOWN_COMMAND\n";
    private const string BadArguments = "ERROR BAD_ARGUMENTS\n";
    private const string TooLong = "ERROR LINE_TOO_LONG\n";

    public static TheoryData<string, string> OpenScripts => new()
    {
        // Commands, any case, LF or CRLF.
        { "TIME\n", Time },
        { "time\r\nTiMe\n", Time + Time },
        { "HELP\n", Help },
        { "help\r\n", Help },
        { "HELP   \n", Help },
        { "TIME  \r\n", Time },
        { "ECHO Hello from client\n", "ECHO Hello from client\n" },
        { "echo x\r\n", "ECHO x\n" },
        { "eChO MiXeD CaSe\n", "ECHO MiXeD CaSe\n" },

        // ECHO text is every byte after the first space, verbatim.
        { "ECHO  two  spaces  \n", "ECHO  two  spaces  \n" },
        { "ECHO a\rb\n", "ECHO a\rb\n" },
        { "ECHO a\r\r\n", "ECHO a\r\n" },
        { "ECHO a\0b\tc\n", "ECHO a\0b\tc\n" },
        { "ECHO \u00c3\u00a9t\u00c3\u00a9 \u00e2\u009c\u0093\n", "ECHO \u00c3\u00a9t\u00c3\u00a9 \u00e2\u009c\u0093\n" }, // UTF-8 "été ✓"
        { "ECHO  \n", BadArguments },

        // Bad arguments.
        { "ECHO\n", BadArguments },
        { "ECHO \n", BadArguments },
        { "ECHO     \r\n", BadArguments },
        { "TIME now\n", BadArguments },
        { "HELP me\n", BadArguments },
        { "QUIT now\n", BadArguments },
        { "time  x\n", BadArguments },

        // Unknown commands.
        { "\n", Unknown },
        { "\r\n", Unknown },
        { " TIME\n", Unknown },
        { "TIMEX\n", Unknown },
        { "TIM\n", Unknown },
        { "ECHOES hi\n", Unknown },
        { "TIME\tx\n", Unknown },
        { "QUITE\n", Unknown },
        { "T\u00c9ME\n", Unknown },
        { "\0\0\0\0\n", Unknown },
        { "GET / HTTP/1.1\r\n", Unknown },

        // Several lines in one script: one reply each, in order.
        { "TIME\nECHO 1\nFOO\nHELP\nECHO\n", Time + "ECHO 1\n" + Unknown + Help + BadArguments },
    };

    [Theory]
    [MemberData(nameof(OpenScripts))]
    public void Each_line_gets_its_reply_however_the_bytes_arrive(string script, string expected)
    {
        foreach (byte[][] chunks in Splits(B(script)))
        {
            Result result = Run(chunks, halfClose: false);
            Assert.Equal(expected, result.Output);
            Assert.False(result.Closed);
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(31)]
    [InlineData(100)]
    public void An_output_budget_pauses_answering_without_changing_the_answers(int budget)
    {
        string script = string.Concat(Enumerable.Range(0, 50).Select(i => i % 2 == 0 ? $"ECHO {i}\n" : "TIME\r\n")) + "QUIT\nTIME\n";
        string expected = string.Concat(Enumerable.Range(0, 50).Select(i => i % 2 == 0 ? $"ECHO {i}\n" : Time)) + "BYE\n";
        foreach (byte[][] chunks in new[] { [B(script)], B(script).Chunk(7).ToArray() })
        {
            Result result = Run(chunks, halfClose: false, outputBudget: budget);
            Assert.Equal(expected, result.Output);
            Assert.True(result.Closed);
        }
    }

    [Fact]
    public void Output_full_stops_at_the_budget_and_keeps_the_rest_unconsumed()
    {
        using var session = new ServerSession(new FixedTime());
        var output = new System.Buffers.ArrayBufferWriter<byte>();
        var input = new System.Buffers.ReadOnlySequence<byte>(B("ECHO 1\nECHO 2\nECHO 3\n"));
        Assert.Equal(SessionStatus.OutputFull, session.Process(input, false, output, 10, out System.SequencePosition consumed));
        Assert.Equal("ECHO 1\nECHO 2\n", S(output.WrittenSpan.ToArray()));
        Assert.Equal("ECHO 3\n", S(input.Slice(consumed).ToArray()));
    }

    public static TheoryData<string, string, CloseReason> ClosingScripts => new()
    {
        { "QUIT\n", "BYE\n", CloseReason.Quit },
        { "quit\r\n", "BYE\n", CloseReason.Quit },
        { "QUIT   \n", "BYE\n", CloseReason.Quit },
        { "TIME\nQUIT\nTIME\nECHO ignored\n", Time + "BYE\n", CloseReason.Quit },
        { "QUIT\nQUIT\n", "BYE\n", CloseReason.Quit },
    };

    [Theory]
    [MemberData(nameof(ClosingScripts))]
    public void Quit_says_bye_closes_and_ignores_later_lines(string script, string expected, CloseReason reason)
    {
        foreach (byte[][] chunks in Splits(B(script)))
        {
            Result result = Run(chunks, halfClose: false);
            Assert.Equal(expected, result.Output);
            Assert.True(result.Closed);
            Assert.Equal(reason, result.Reason);
        }
    }

    public static TheoryData<string, string> HalfClosedScripts => new()
    {
        { "", "" },
        { "TIME", Time },
        { "TIME\r", Time },
        { "TIME\n", Time },
        { "ECHO a\nECHO last", "ECHO a\nECHO last\n" },
        { "HELP\n\r", Help + Unknown },
        { "ECHO", BadArguments },
    };

    [Theory]
    [MemberData(nameof(HalfClosedScripts))]
    public void After_half_close_every_line_is_answered_the_last_one_without_LF_too(string script, string expected)
    {
        foreach (byte[][] chunks in Splits(B(script)))
        {
            Result result = Run(chunks, halfClose: true);
            Assert.Equal(expected, result.Output);
            Assert.True(result.Closed);
            Assert.Equal(CloseReason.EndOfInput, result.Reason);
        }
    }

    [Fact]
    public void Time_is_local_iso8601_to_the_second_with_a_numeric_offset()
    {
        var output = new System.Buffers.ArrayBufferWriter<byte>();
        ReplyWriter.WriteTime(output, new DateTimeOffset(2025, 9, 12, 17, 24, 13, TimeSpan.FromHours(-5)));
        ReplyWriter.WriteTime(output, new DateTimeOffset(2001, 1, 2, 3, 4, 5, TimeSpan.Zero));
        ReplyWriter.WriteTime(output, new DateTimeOffset(1999, 12, 31, 23, 59, 59, new TimeSpan(5, 30, 0)));
        ReplyWriter.WriteTime(output, new DateTimeOffset(2030, 6, 7, 0, 0, 0, new TimeSpan(-9, -30, 0)));
        Assert.Equal(
            "TIME 2025-09-12T17:24:13-05:00\nTIME 2001-01-02T03:04:05+00:00\nTIME 1999-12-31T23:59:59+05:30\nTIME 2030-06-07T00:00:00-09:30\n",
            S(output.WrittenSpan.ToArray()));
    }

    [Fact]
    public void Time_uses_the_clock_and_its_zone()
    {
        using var session = new ServerSession(new FixedTime(TimeSpan.FromHours(2)));
        var output = new System.Buffers.ArrayBufferWriter<byte>();
        session.Process(Segment.Sequence([B("TIME\n")]), false, output, out _);
        Assert.Equal("TIME 2025-09-13T00:24:13+02:00\n", S(output.WrittenSpan.ToArray()));
    }
}
