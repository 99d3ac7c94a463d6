using System.Buffers;
using System.Text;

namespace TinyServer.Protocol;

/// <summary>The client side of the request lines of protocol.md: writes them.</summary>
public static class RequestWriter
{
    /// <summary>Writes a request line: the text with every byte 255 doubled, then LF. Returns the number of bytes written.</summary>
    /// <exception cref="ArgumentException">The text contains LF, which would make it two requests.</exception>
    public static int Write(IBufferWriter<byte> output, ReadOnlySpan<byte> line)
    {
        if (line.Contains(Wire.LF))
        {
            throw new ArgumentException("A request cannot contain a line feed.", nameof(line));
        }

        int escaped = Telnet.WriteEscaped(output, line);
        output.Write([Wire.LF]);
        return escaped + 1;
    }

    /// <summary>Writes <paramref name="command"/> as a request line (UTF-8, LF-terminated).</summary>
    /// <exception cref="ArgumentException">The command contains LF, which would make it two requests.</exception>
    public static int Write(IBufferWriter<byte> output, string command) => Write(output, Encoding.UTF8.GetBytes(command));
}
