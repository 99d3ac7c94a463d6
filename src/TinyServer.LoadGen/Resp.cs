namespace TinyServer.LoadGen;

/// <summary>Just enough of RESP, the Redis reply format, to frame replies and check the ones the load sends for.</summary>
internal static class Resp
{
    /// <summary><c>*2\r\n$N\r\nSECONDS\r\n$M\r\nMICROS\r\n</c> with 20-digit numbers at most.</summary>
    public const int MaxTimeReplyLength = 4 + (2 * (5 + 20 + 2));

    private const int MaxDepth = 8;

    /// <summary>Length of the complete RESP reply at the start of <paramref name="buffer"/>; 0 if it is not all there yet, -1 if it is malformed.</summary>
    public static int FrameLength(ReadOnlySpan<byte> buffer) => Frame(buffer, 0);

    /// <summary>True for the reply to TIME: an array of two bulk strings, both non-empty strings of digits.</summary>
    public static bool IsTimeReply(ReadOnlySpan<byte> frame)
    {
        if (!frame.StartsWith("*2\r\n"u8))
        {
            return false;
        }

        frame = frame[4..];
        for (int i = 0; i < 2; i++)
        {
            int length = Frame(frame, MaxDepth);
            int lf = frame.IndexOf((byte)'\n');
            if (length <= 0 || frame[0] != (byte)'$' || length - lf - 3 < 1 || frame[(lf + 1)..(length - 2)].ContainsAnyExceptInRange((byte)'0', (byte)'9'))
            {
                return false;
            }

            frame = frame[length..];
        }

        return frame.IsEmpty;
    }

    private static int Frame(ReadOnlySpan<byte> buffer, int depth)
    {
        int lf = buffer.IndexOf((byte)'\n');
        if (lf < 0)
        {
            return 0;
        }

        if (lf < 2 || buffer[lf - 1] != (byte)'\r')
        {
            return -1;
        }

        int header = lf + 1;
        switch (buffer[0])
        {
            case (byte)'+' or (byte)'-' or (byte)':':
                return header;
            case (byte)'$':
                if (!TryParseLength(buffer[1..(lf - 1)], out int length))
                {
                    return -1;
                }

                if (length < 0)
                {
                    return header; // $-1: the null bulk string.
                }

                long end = (long)header + length + 2;
                if (end > int.MaxValue)
                {
                    return -1;
                }

                if (buffer.Length < end)
                {
                    return 0;
                }

                return buffer[(int)end - 2] == (byte)'\r' && buffer[(int)end - 1] == (byte)'\n' ? (int)end : -1;
            case (byte)'*':
                if (!TryParseLength(buffer[1..(lf - 1)], out int count) || depth >= MaxDepth)
                {
                    return -1;
                }

                int offset = header;
                for (int i = 0; i < count; i++)
                {
                    int element = Frame(buffer[offset..], depth + 1);
                    if (element <= 0)
                    {
                        return element;
                    }

                    offset += element;
                }

                return offset;
            default:
                return -1;
        }
    }

    // A length is -1 (null) or 0 to int.MaxValue.
    private static bool TryParseLength(ReadOnlySpan<byte> digits, out int length)
    {
        length = -1;
        if (digits.SequenceEqual("-1"u8))
        {
            return true;
        }

        long value = 0;
        foreach (byte b in digits)
        {
            if (b is < (byte)'0' or > (byte)'9' || (value = (value * 10) + (b - '0')) > int.MaxValue)
            {
                return false;
            }
        }

        length = (int)value;
        return !digits.IsEmpty;
    }
}
