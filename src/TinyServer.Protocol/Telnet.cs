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
}
