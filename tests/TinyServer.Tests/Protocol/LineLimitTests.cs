using TinyServer.Protocol;
using static TinyServer.Tests.Protocol.ProtocolHarness;

namespace TinyServer.Tests.Protocol;

/// <summary>The maximum line length, exactly, one below and one above, however the bytes arrive.</summary>
[Trait("Tier", "unit")]
public class LineLimitTests
{
    private const string TooLong = "ERROR LINE_TOO_LONG\n";

    // A line of exactly `length` bytes: ECHO and a text of x's.
    private static string Echo(int length) => "ECHO " + new string('x', length - 5);

    [Theory]
    [InlineData(16, "\n")]
    [InlineData(16, "\r\n")]
    [InlineData(64, "\n")]
    [InlineData(Wire.DefaultMaxLineLength, "\n")]
    [InlineData(Wire.DefaultMaxLineLength, "\r\n")]
    public void A_line_of_the_maximum_length_or_one_less_is_answered(int max, string ending)
    {
        foreach (int length in new[] { max - 1, max })
        {
            string line = Echo(length);
            foreach (byte[][] chunks in Cuts(B(line + ending + "TIME\n")))
            {
                Result result = Run(chunks, halfClose: false, max);
                Assert.Equal(line + "\n" + FixedTime.Expected + "\n", result.Output);
                Assert.False(result.Closed);
            }
        }
    }

    [Theory]
    [InlineData(16, "\n")]
    [InlineData(16, "\r\n")]
    [InlineData(16, "")]
    [InlineData(64, "\n")]
    [InlineData(Wire.DefaultMaxLineLength, "\n")]
    [InlineData(Wire.DefaultMaxLineLength, "\r\n")]
    [InlineData(Wire.DefaultMaxLineLength, "")]
    public void A_line_one_over_the_maximum_is_refused_and_the_connection_closed(int max, string ending)
    {
        string script = "TIME\n" + Echo(max + 1) + ending + "TIME\n";
        if (ending.Length == 0)
        {
            script = "TIME\n" + Echo(max + 1);
        }

        foreach (byte[][] chunks in Cuts(B(script)))
        {
            Result result = Run(chunks, halfClose: ending.Length == 0, max);
            Assert.Equal(FixedTime.Expected + "\n" + TooLong, result.Output);
            Assert.True(result.Closed);
            Assert.Equal(CloseReason.LineTooLong, result.Reason);
        }
    }

    [Theory]
    [InlineData(16)]
    [InlineData(Wire.DefaultMaxLineLength)]
    public void An_endless_line_is_cut_off_without_holding_more_than_the_limit(int max)
    {
        // max + 2 bytes without LF can no longer be a valid line, whether they arrive at once or byte by byte.
        byte[] endless = B(new string('x', max + 2));
        foreach (byte[][] chunks in new[] { [endless], endless.Select(b => new[] { b }).ToArray(), endless.Chunk(7).ToArray() })
        {
            Result result = Run(chunks, halfClose: false, max);
            Assert.Equal(TooLong, result.Output);
            Assert.True(result.Closed);
            Assert.True(result.MaxHeld <= max + 1, $"held {result.MaxHeld} bytes for a limit of {max}");
        }
    }

    [Fact]
    public void A_maximum_length_line_followed_by_a_lone_CR_is_still_waiting_for_its_LF()
    {
        Result result = Run([B(Echo(16) + "\r")], halfClose: false, 16);
        Assert.Equal("", result.Output);
        Assert.False(result.Closed);
        Assert.Equal(17, result.MaxHeld);
    }

    [Fact]
    public void A_maximum_length_line_followed_by_another_byte_is_refused_before_its_LF()
    {
        Result result = Run([B(Echo(16) + "x")], halfClose: false, 16);
        Assert.Equal(TooLong, result.Output);
        Assert.True(result.Closed);
    }

    [Theory]
    [InlineData("TIMEX\xff\xf7\n", "")] // IAC EC cannot take back the byte that made the line too long.
    [InlineData("tI\xff\xfb\x0f", "")] // No telnet answer before the error.
    [InlineData("TIME\xff\xff\xff\xf7\n", "")] // The data byte 255 counts.
    [InlineData("TIME\r\xff\xf1\n", "TIME 2025-09-12T17:24:13-05:00\n")] // max bytes + CR, then a command, then LF.
    public void A_telnet_command_right_after_the_limit_changes_nothing_however_the_bytes_arrive(string script, string before)
    {
        int max = script.StartsWith("tI", StringComparison.Ordinal) ? 1 : 4;
        foreach (byte[][] chunks in Splits(B(script)))
        {
            Result result = Run(chunks, halfClose: false, max);
            Assert.Equal(before.Length > 0 ? before : TooLong, result.Output);
            Assert.Equal(before.Length == 0, result.Closed);
        }
    }

    [Fact]
    public void Telnet_commands_do_not_count_toward_the_limit()
    {
        string line = "ECHO " + string.Concat(Enumerable.Repeat("x\xff\xf1", 11)); // 16 data bytes, 22 command bytes
        foreach (byte[][] chunks in Splits(B(line + "\n")))
        {
            Result result = Run(chunks, halfClose: false, 16);
            Assert.Equal("ECHO xxxxxxxxxxx\n", result.Output);
        }
    }

    [Fact]
    public void Data_byte_255_counts_toward_the_limit()
    {
        string line = "ECHO " + string.Concat(Enumerable.Repeat("\xff\xff", 12)); // 17 data bytes
        foreach (byte[][] chunks in Splits(B(line + "\n")))
        {
            Assert.Equal(TooLong, Run(chunks, halfClose: false, 16).Output);
        }
    }

    // For long lines, every cut is too many: cut around the interesting places and at a spread of others.
    private static IEnumerable<byte[][]> Cuts(byte[] input)
    {
        if (input.Length < 200)
        {
            foreach (byte[][] split in Splits(input))
            {
                yield return split;
            }

            yield break;
        }

        var cuts = new SortedSet<int>();
        for (int i = 0; i < input.Length; i += 997)
        {
            cuts.Add(i);
        }

        for (int i = 0; i < input.Length; i++)
        {
            if (input[i] is (byte)'\n' or (byte)'\r')
            {
                cuts.UnionWith([i - 1, i, i + 1, i + 2]);
            }
        }

        yield return [input];
        foreach (int cut in cuts.Where(c => c >= 0 && c <= input.Length))
        {
            yield return [input[..cut], input[cut..]];
        }

        yield return [.. input.Chunk(4096)];
        yield return [.. input.Chunk(1000)];
    }
}
