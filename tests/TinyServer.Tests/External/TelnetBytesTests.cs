using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.External;

/// <summary>
/// The bytes telnet sends for Ctrl-C (IAC IP, IAC DO TIMING-MARK), here in the middle of a line, as a telnet in
/// character mode would send them. telnet shows no server output until the TIMING-MARK is answered.
/// </summary>
[Trait("Tier", "unit")]
public class TelnetBytesTests
{
    private static readonly byte[] InterruptThenTimingMark = [255, 244, 255, 253, 6];

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Interrupt_mid_line_discards_the_partial_line_and_timing_mark_is_refused(bool byteByByte)
    {
        await using TestServer server = await TestServer.StartAsync();
        await using RawConnection connection = await RawConnection.OpenAsync(server.EndPoint);
        byte[] request = [.. "ECHO discarded"u8, .. InterruptThenTimingMark, .. "ECHO kept\r\n"u8];

        await (byteByByte ? connection.SendByteByByteAsync(request) : connection.SendAsync(request));

        Assert.Equal([255, 252, 6], await connection.ReadBytesAsync(3)); // IAC WONT TIMING-MARK
        Assert.Equal("ECHO kept", await connection.ReadLineAsync());
        await connection.SendAsync("QUIT\n");
        Assert.Equal(["BYE"], await connection.ReadLinesToEndAsync());
    }
}
