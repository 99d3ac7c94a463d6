using System.Text;

namespace TinyServer.LoadGen.Tests;

[Trait("Tier", "unit")]
public class RespTests
{
    [Theory]
    [InlineData("+PONG\r\n", 7)]
    [InlineData("-ERR unknown\r\n", 14)]
    [InlineData(":42\r\n", 5)]
    [InlineData("$5\r\nhello\r\n", 11)]
    [InlineData("$5\r\nhello\r\n+PONG\r\n", 11)]
    [InlineData("$-1\r\n", 5)]
    [InlineData("$0\r\n\r\n", 6)]
    [InlineData("*2\r\n$1\r\na\r\n$1\r\nb\r\n", 18)]
    [InlineData("", 0)]
    [InlineData("+PON", 0)]
    [InlineData("$5\r\nhel", 0)]
    [InlineData("*2\r\n$1\r\na\r\n", 0)]
    [InlineData("?what\r\n", -1)]
    [InlineData("+OK\n", -1)]
    [InlineData("$5\r\nhelloXX", -1)]
    [InlineData("$x\r\n", -1)]
    [InlineData("$99999999999\r\n", -1)]
    public void A_reply_is_framed_by_its_type_and_length(string buffer, int length) =>
        Assert.Equal(length, Resp.FrameLength(Encoding.ASCII.GetBytes(buffer)));

    [Theory]
    [InlineData("*2\r\n$10\r\n1700000000\r\n$6\r\n123456\r\n", true)]
    [InlineData("*2\r\n$1\r\n1\r\n$1\r\n0\r\n", true)]
    [InlineData("*2\r\n$0\r\n\r\n$1\r\n0\r\n", false)]
    [InlineData("*1\r\n$10\r\n1700000000\r\n", false)]
    [InlineData("*2\r\n:1700000000\r\n:1\r\n", false)]
    [InlineData("*2\r\n$2\r\n1a\r\n$1\r\n0\r\n", false)]
    public void A_time_reply_is_two_bulk_strings_of_digits(string frame, bool valid) =>
        Assert.Equal(valid, Resp.IsTimeReply(Encoding.ASCII.GetBytes(frame)));
}
