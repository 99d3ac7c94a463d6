namespace TinyServer.Protocol;

/// <summary>The fixed strings and bytes of the protocol (see protocol.md). Every reply line ends in LF.</summary>
public static class Wire
{
    public const byte LF = (byte)'\n';
    public const byte CR = (byte)'\r';
    public const byte Space = (byte)' ';

    /// <summary>
    /// Default maximum request line length in bytes, line ending excluded. 16 KiB holds any line a person types and
    /// any sensible ECHO payload while keeping a hostile peer's cost small (Kestrel's request line limit is 8 KiB,
    /// Redis' inline command limit is 64 KiB).
    /// </summary>
    public const int DefaultMaxLineLength = 16 * 1024;

    /// <summary>The default TCP port of the server.</summary>
    public const int DefaultPort = 40000;

    public static ReadOnlySpan<byte> Banner => "WELCOME, I'm TinyServer not pressure\n"u8;
    public static ReadOnlySpan<byte> Help => "HELP TIME | ECHO <text> | HELP | QUIT\n"u8;
    public static ReadOnlySpan<byte> Bye => "BYE\n"u8;
    public static ReadOnlySpan<byte> TimePrefix => "TIME "u8;
    public static ReadOnlySpan<byte> EchoPrefix => "ECHO "u8;

    public static ReadOnlySpan<byte> TimeWord => "TIME"u8;
    public static ReadOnlySpan<byte> EchoWord => "ECHO"u8;
    public static ReadOnlySpan<byte> HelpWord => "HELP"u8;
    public static ReadOnlySpan<byte> QuitWord => "QUIT"u8;

    /// <summary>The banner text without its line ending, as a client sees it.</summary>
    public const string BannerText = "WELCOME, I'm TinyServer not pressure";

    /// <summary>The reply to QUIT, without its line ending.</summary>
    public const string ByeText = "BYE";

    /// <summary>Every error reply starts with this word and a space.</summary>
    public const string ErrorPrefixText = "ERROR ";
}
