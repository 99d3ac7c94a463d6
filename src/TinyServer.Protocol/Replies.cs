using System.Buffers;
using System.Text;

namespace TinyServer.Protocol;

/// <summary>The client side of the wire format: reads reply lines and classifies them.</summary>
public static class Replies
{
    /// <summary>
    /// Longest reply line a client accepts by default: an ECHO of the longest request the server accepts
    /// (the reply is as long as the request), with room for a server configured up to 1 MiB.
    /// </summary>
    public const int DefaultMaxReplyLength = 1024 * 1024 + 16;

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

    /// <summary>True when <paramref name="command"/> is QUIT, which ends the session.</summary>
    public static bool IsQuit(string command) => Commands.Parse(Encoding.UTF8.GetBytes(command), out _) == Command.Quit;

    /// <summary>Decodes a reply line as UTF-8 (invalid bytes become U+FFFD).</summary>
    public static string Decode(ReadOnlySpan<byte> line) => Encoding.UTF8.GetString(line);

    /// <summary>Writes <paramref name="command"/> as a request line (UTF-8, LF-terminated).</summary>
    public static void WriteRequest(IBufferWriter<byte> output, string command) =>
        Responses.WriteRequest(output, Encoding.UTF8.GetBytes(command));
}
