using Microsoft.Extensions.Logging;

namespace TinyServer.Transport.Epoll;

internal static partial class Log
{
    [LoggerMessage(EventId = 40, Level = LogLevel.Error, Message = "Connection {ConnectionId}: an exception escaped into the epoll loop; the connection is aborted, the loop serves on")]
    public static partial void LoopFault(ILogger logger, string connectionId, Exception exception);
}
