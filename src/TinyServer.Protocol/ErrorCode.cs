namespace TinyServer.Protocol;

/// <summary>The error replies. Each is a fixed line: an error reply never echoes input.</summary>
public enum ErrorCode
{
    /// <summary>The command word is not a command (an empty line included).</summary>
    UnknownCommand,

    /// <summary>A known command with arguments it does not take, or ECHO without text.</summary>
    BadArguments,

    /// <summary>The line is longer than the maximum; the server closes the connection after it.</summary>
    LineTooLong,

    /// <summary>The server is at its connection limit; sent instead of the banner, then the connection closes.</summary>
    TooManyConnections,

    /// <summary>No complete line arrived within the idle timeout; the connection closes after it.</summary>
    IdleTimeout,

    /// <summary>The server is stopping; sent after the answers to every line already received, then the close.</summary>
    ShuttingDown,

    /// <summary>
    /// The first byte on a TLS port cannot start a TLS handshake (plain text, e.g. nc or telnet): sent in clear text
    /// instead of the banner, then the close.
    /// </summary>
    TlsRequired,
}

public static class ErrorCodes
{
    private static ReadOnlySpan<byte> UnknownCommandLine => "ERROR UNKNOWN_COMMAND\n"u8;
    private static ReadOnlySpan<byte> BadArgumentsLine => "ERROR BAD_ARGUMENTS\n"u8;
    private static ReadOnlySpan<byte> LineTooLongLine => "ERROR LINE_TOO_LONG\n"u8;
    private static ReadOnlySpan<byte> TooManyConnectionsLine => "ERROR TOO_MANY_CONNECTIONS\n"u8;
    private static ReadOnlySpan<byte> IdleTimeoutLine => "ERROR IDLE_TIMEOUT\n"u8;
    private static ReadOnlySpan<byte> ShuttingDownLine => "ERROR SHUTTING_DOWN\n"u8;
    private static ReadOnlySpan<byte> TlsRequiredLine => "ERROR TLS_REQUIRED\n"u8;

    /// <summary>The whole reply line for <paramref name="code"/>, LF included.</summary>
    public static ReadOnlySpan<byte> ReplyLine(ErrorCode code) => code switch
    {
        ErrorCode.UnknownCommand => UnknownCommandLine,
        ErrorCode.BadArguments => BadArgumentsLine,
        ErrorCode.LineTooLong => LineTooLongLine,
        ErrorCode.TooManyConnections => TooManyConnectionsLine,
        ErrorCode.IdleTimeout => IdleTimeoutLine,
        ErrorCode.ShuttingDown => ShuttingDownLine,
        ErrorCode.TlsRequired => TlsRequiredLine,
        _ => throw new ArgumentOutOfRangeException(nameof(code)),
    };

    /// <summary>The code's name on the wire, e.g. <c>UNKNOWN_COMMAND</c>.</summary>
    public static string Name(ErrorCode code) => code switch
    {
        ErrorCode.UnknownCommand => "UNKNOWN_COMMAND",
        ErrorCode.BadArguments => "BAD_ARGUMENTS",
        ErrorCode.LineTooLong => "LINE_TOO_LONG",
        ErrorCode.TooManyConnections => "TOO_MANY_CONNECTIONS",
        ErrorCode.IdleTimeout => "IDLE_TIMEOUT",
        ErrorCode.ShuttingDown => "SHUTTING_DOWN",
        ErrorCode.TlsRequired => "TLS_REQUIRED",
        _ => throw new ArgumentOutOfRangeException(nameof(code)),
    };
}
