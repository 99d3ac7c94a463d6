using System.Text;

namespace TinyServer.Protocol;

/// <summary>
/// The client side of the reply lines of protocol.md: how long one may be, how to decode one, and which reply it is.
/// The server writes them with <see cref="ReplyWriter"/>.
/// </summary>
public static class ReplyReader
{
    /// <summary>
    /// Longest reply line a client accepts by default: an ECHO of the longest request the server accepts
    /// (the reply is as long as the request), with room for a server configured up to 1 MiB.
    /// </summary>
    public const int DefaultMaxReplyLength = 1024 * 1024 + 16;

    // Every 'd' is a digit, '+' is the sign of the offset ('+' or '-'); any other byte must be itself.
    private static ReadOnlySpan<byte> TimeReplyShape => "TIME dddd-dd-ddTdd:dd:dd+dd:dd"u8;

    /// <summary>True when <paramref name="reply"/> is an error reply (compared case-insensitively).</summary>
    public static bool IsError(string reply) => reply.StartsWith(Wire.ErrorPrefixText, StringComparison.OrdinalIgnoreCase);

    /// <summary>True when <paramref name="line"/> is the server's banner (compared case-insensitively).</summary>
    public static bool IsBanner(string line) => line.Equals(Wire.BannerText, StringComparison.OrdinalIgnoreCase);

    /// <summary>True when <paramref name="reply"/> is the reply to QUIT (compared case-insensitively).</summary>
    public static bool IsBye(string reply) => reply.Equals(Wire.ByeText, StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// True when <paramref name="line"/> is a notice the server sends unasked just before it closes the connection
    /// (<c>ERROR IDLE_TIMEOUT</c>, <c>ERROR SHUTTING_DOWN</c>; compared case-insensitively): it answers no request.
    /// </summary>
    public static bool IsClosingNotice(string line)
    {
        if (!IsError(line))
        {
            return false;
        }

        ReadOnlySpan<char> code = line.AsSpan(Wire.ErrorPrefixText.Length);
        return code.Equals(ErrorCodes.Name(ErrorCode.IdleTimeout), StringComparison.OrdinalIgnoreCase)
            || code.Equals(ErrorCodes.Name(ErrorCode.ShuttingDown), StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>Decodes a reply line as UTF-8 (invalid bytes become U+FFFD).</summary>
    public static string Decode(ReadOnlySpan<byte> line) => Encoding.UTF8.GetString(line);

    /// <summary>
    /// True when <paramref name="line"/> (line ending removed) is a time-reply, <c>TIME 2025-09-12T17:24:13-05:00</c>:
    /// ISO 8601 to the second with a numeric UTC offset (never <c>Z</c>), exactly as the server writes it.
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
