using System.Net;
using TinyServer.Protocol;

namespace TinyServer.Server;

internal static partial class Log
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Listening on {EndPoint}")]
    public static partial void Listening(ILogger logger, string endPoint);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "TinyServer ready: max line length {MaxLineLength} bytes")]
    public static partial void Ready(ILogger logger, int maxLineLength);

    [LoggerMessage(EventId = 10, Level = LogLevel.Debug, Message = "Connection {ConnectionId} from {Remote} opened")]
    public static partial void ConnectionOpened(ILogger logger, string connectionId, EndPoint? remote);

    [LoggerMessage(EventId = 11, Level = LogLevel.Debug, Message = "Connection {ConnectionId} from {Remote} closed: {Reason}, {Requests} requests")]
    public static partial void ConnectionClosed(ILogger logger, string connectionId, EndPoint? remote, CloseReason reason, long requests);

    [LoggerMessage(EventId = 12, Level = LogLevel.Debug, Message = "Connection {ConnectionId} from {Remote} failed: {Error}")]
    public static partial void ConnectionFailed(ILogger logger, string connectionId, EndPoint? remote, string error);
}
