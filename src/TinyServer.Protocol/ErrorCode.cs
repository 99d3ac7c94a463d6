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
}

public static class ErrorCodes
{
    private static ReadOnlySpan<byte> UnknownCommandLine => "ERROR UNKNOWN_COMMAND\n"u8;
    private static ReadOnlySpan<byte> BadArgumentsLine => "ERROR BAD_ARGUMENTS\n"u8;
    private static ReadOnlySpan<byte> LineTooLongLine => "ERROR LINE_TOO_LONG\n"u8;

    /// <summary>The whole reply line for <paramref name="code"/>, LF included.</summary>
    public static ReadOnlySpan<byte> ReplyLine(ErrorCode code) => code switch
    {
        ErrorCode.UnknownCommand => UnknownCommandLine,
        ErrorCode.BadArguments => BadArgumentsLine,
        ErrorCode.LineTooLong => LineTooLongLine,
        _ => throw new ArgumentOutOfRangeException(nameof(code)),
    };

    /// <summary>The code's name on the wire, e.g. <c>UNKNOWN_COMMAND</c>.</summary>
    public static string Name(ErrorCode code) => code switch
    {
        ErrorCode.UnknownCommand => "UNKNOWN_COMMAND",
        ErrorCode.BadArguments => "BAD_ARGUMENTS",
        ErrorCode.LineTooLong => "LINE_TOO_LONG",
        _ => throw new ArgumentOutOfRangeException(nameof(code)),
    };
}
