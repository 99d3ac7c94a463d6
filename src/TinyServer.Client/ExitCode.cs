namespace TinyServer.Client;

/// <summary>The client's exit codes (README.md, "Client").</summary>
public enum ExitCode
{
    Success = 0,
    ErrorReply = 1,
    Usage = 2,
    CannotConnect = 3,
    Timeout = 4,
    ServerClosed = 5,
    ProtocolError = 6,
}
