using System.Net;

namespace TinyServer.Server;

internal static partial class Log
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Listening on {EndPoint}")]
    public static partial void Listening(ILogger logger, string endPoint);

    [LoggerMessage(EventId = 7, Level = LogLevel.Information, Message = "Prometheus metrics on {Url}")]
    public static partial void PrometheusListening(ILogger logger, string url);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "TinyServer ready: max line length {MaxLineLength} bytes")]
    public static partial void Ready(ILogger logger, int maxLineLength);

    [LoggerMessage(EventId = 10, Level = LogLevel.Debug, Message = "Connection {ConnectionId} from {Remote} opened")]
    public static partial void ConnectionOpened(ILogger logger, string connectionId, EndPoint? remote);

    [LoggerMessage(EventId = 11, Level = LogLevel.Debug, Message = "Connection {ConnectionId} from {Remote} closed: {Reason}, {Requests} requests")]
    public static partial void ConnectionClosed(ILogger logger, string connectionId, EndPoint? remote, string reason, long requests);

    [LoggerMessage(EventId = 15, Level = LogLevel.Error, Message = "A connection's heartbeat failed; the other connections are beaten on")]
    public static partial void HeartbeatFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 14, Level = LogLevel.Debug, Message = "Connection {ConnectionId} from {Remote} rejected: {Reason}")]
    public static partial void ConnectionRejected(ILogger logger, string connectionId, EndPoint? remote, string reason);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "File descriptor limit {Limit}: room for about {Capacity} connections (--max-connections {MaxConnections})")]
    public static partial void Capacity(ILogger logger, long limit, long capacity, int maxConnections);

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "File descriptor limit {Limit} is below what --max-connections {MaxConnections} needs; connections beyond about {Capacity} will wait in the listen backlog")]
    public static partial void CapacityLow(ILogger logger, long limit, long capacity, int maxConnections);

    [LoggerMessage(EventId = 5, Level = LogLevel.Information, Message = "Stopped after {Accepted} connections ({Rejected} more turned away at the limit): {Drained} connections drained, {Aborted} aborted")]
    public static partial void Stopped(ILogger logger, long accepted, long rejected, long drained, long aborted);

    [LoggerMessage(EventId = 12, Level = LogLevel.Debug, Message = "Connection {ConnectionId}: PROXY v{Version} {Command} header from {Proxy}, client {Remote}")]
    public static partial void ProxyHeaderAccepted(ILogger logger, string connectionId, int version, string command, EndPoint? proxy, EndPoint? remote);

    [LoggerMessage(EventId = 13, Level = LogLevel.Debug, Message = "Connection {ConnectionId} from {Remote} closed without a reply: {Reason}")]
    public static partial void ProxyRejected(ILogger logger, string connectionId, EndPoint? remote, string reason);

    [LoggerMessage(EventId = 6, Level = LogLevel.Information, Message = "PROXY protocol: {Accepted} headers accepted; closed without a reply: {Untrusted} from untrusted peers, {Invalid} invalid headers, {TimedOut} timed out, {ClosedEarly} closed before a complete header")]
    public static partial void ProxySummary(ILogger logger, long accepted, long untrusted, long invalid, long timedOut, long closedEarly);

    [LoggerMessage(EventId = 30, Level = LogLevel.Debug, Message = "TLS connection {ConnectionId} from {Remote} closed: {Reason}")]
    public static partial void TlsClosed(ILogger logger, string connectionId, EndPoint? remote, string reason);

    [LoggerMessage(EventId = 16, Level = LogLevel.Warning, Message = "TLS handshakes run at normal CPU priority: the system refused SCHED_IDLE (errno {Error}); a burst of handshakes will delay the event threads")]
    public static partial void HandshakePriorityRefused(ILogger logger, int error);

    [LoggerMessage(EventId = 20, Level = LogLevel.Warning, Message = "Cannot accept connections on {EndPoint}: {Error}; retrying with a backoff up to 1 s until it works")]
    public static partial void AcceptFailed(ILogger logger, EndPoint endPoint, string error);

    [LoggerMessage(EventId = 21, Level = LogLevel.Debug, Message = "Accept on {EndPoint} failed: {Error}; retrying in {DelayMs} ms")]
    public static partial void AcceptRetry(ILogger logger, EndPoint endPoint, string error, int delayMs);
}
