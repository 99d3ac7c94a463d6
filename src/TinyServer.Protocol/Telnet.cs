using System.Buffers;

namespace TinyServer.Protocol;

/// <summary>Telnet command bytes (RFC 854, RFC 855, RFC 860).</summary>
public static class Telnet
{
    public const byte Iac = 255;
    public const byte Dont = 254;
    public const byte Do = 253;
    public const byte Wont = 252;
    public const byte Will = 251;
    public const byte SubnegotiationBegin = 250;
    public const byte GoAhead = 249;
    public const byte EraseLine = 248;
    public const byte EraseCharacter = 247;
    public const byte AreYouThere = 246;
    public const byte AbortOutput = 245;
    public const byte InterruptProcess = 244;
    public const byte Break = 243;
    public const byte DataMark = 242;
    public const byte NoOperation = 241;
    public const byte SubnegotiationEnd = 240;

    /// <summary>The TIMING-MARK option a telnet client sends after IAC IP (RFC 860).</summary>
    public const byte TimingMark = 6;

    /// <summary>
    /// Writes <paramref name="data"/> with every data byte 255 doubled (<c>IAC IAC</c>), as telnet requires in both
    /// directions; returns the number of bytes written.
    /// </summary>
    internal static int WriteEscaped(IBufferWriter<byte> output, ReadOnlySpan<byte> data)
    {
        int written = 0;
        while (true)
        {
            int iac = data.IndexOf(Iac);
            if (iac < 0)
            {
                output.Write(data);
                return written + data.Length;
            }

            output.Write(data[..(iac + 1)]);
            output.Write([Iac]);
            written += iac + 2;
            data = data[(iac + 1)..];
        }
    }
}
