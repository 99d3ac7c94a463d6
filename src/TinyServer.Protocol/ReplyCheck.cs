namespace TinyServer.Protocol;

/// <summary>Checks a reply line a client has read (line ending removed) against the grammar in protocol.md.</summary>
public static class ReplyCheck
{
    // Every 'd' is a digit, '+' is the sign of the offset ('+' or '-'); any other byte must be itself.
    private static ReadOnlySpan<byte> TimeReplyShape => "TIME dddd-dd-ddTdd:dd:dd+dd:dd"u8;

    /// <summary>
    /// True when <paramref name="line"/> is a time-reply, <c>TIME 2025-09-12T17:24:13-05:00</c>: ISO 8601 to the
    /// second with a numeric UTC offset (never <c>Z</c>), exactly as the server writes it.
    /// </summary>
    public static bool IsTimeReply(ReadOnlySpan<byte> line)
    {
        ReadOnlySpan<byte> shape = TimeReplyShape;
        if (line.Length != shape.Length)
        {
            return false;
        }

        for (int i = 0; i < shape.Length; i++)
        {
            byte b = line[i];
            bool ok = shape[i] switch
            {
                (byte)'d' => char.IsAsciiDigit((char)b),
                (byte)'+' => b is (byte)'+' or (byte)'-',
                _ => b == shape[i],
            };
            if (!ok)
            {
                return false;
            }
        }

        return true;
    }
}
