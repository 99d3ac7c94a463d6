using System.Buffers;
using TinyServer.Protocol;

namespace TinyServer.Tests.Protocol;

/// <summary>A client's request line: the bytes verbatim with every 255 doubled (IAC IAC), then LF; never two lines.</summary>
[Trait("Tier", "unit")]
public class RequestWriterTests
{
    [Theory]
    [InlineData(new byte[] { }, new byte[] { 10 })]
    [InlineData(new byte[] { (byte)'T', (byte)'I', (byte)'M', (byte)'E' }, new byte[] { (byte)'T', (byte)'I', (byte)'M', (byte)'E', 10 })]
    [InlineData(new byte[] { 255 }, new byte[] { 255, 255, 10 })]
    [InlineData(new byte[] { (byte)'a', 255, (byte)'b', 255, 255, 13 }, new byte[] { (byte)'a', 255, 255, (byte)'b', 255, 255, 255, 255, 13, 10 })]
    public void Every_255_is_doubled_and_the_line_ends_in_LF(byte[] line, byte[] expected)
    {
        var output = new ArrayBufferWriter<byte>();
        int written = RequestWriter.Write(output, line);
        Assert.Equal(expected, output.WrittenSpan.ToArray());
        Assert.Equal(expected.Length, written);
    }

    [Fact]
    public void A_command_is_written_as_UTF8()
    {
        var output = new ArrayBufferWriter<byte>();
        int written = RequestWriter.Write(output, "ECHO é");
        Assert.Equal("ECHO é\n"u8.ToArray(), output.WrittenSpan.ToArray());
        Assert.Equal(8, written);
    }

    [Fact]
    public void A_line_feed_would_make_two_requests_and_is_refused()
    {
        var output = new ArrayBufferWriter<byte>();
        Assert.Throws<ArgumentException>(() => RequestWriter.Write(output, "ECHO a\nTIME"));
        Assert.Equal(0, output.WrittenCount);
    }
}
