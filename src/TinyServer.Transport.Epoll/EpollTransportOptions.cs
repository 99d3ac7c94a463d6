namespace TinyServer.Transport.Epoll;

/// <summary>The epoll transport's own settings; the server maps its options to these in one place.</summary>
public sealed class EpollTransportOptions
{
    /// <summary>Event loops (threads) that serve the connections; at least 1. Default: one per two cores.</summary>
    public int IoThreads { get; init; } = Math.Max(1, Environment.ProcessorCount / 2);

    /// <summary>
    /// Bytes a connection receives and holds before its handler consumed them; receiving pauses at this many (the
    /// socket's own buffers and then the peer wait meanwhile). Must hold the longest unit the handler waits for whole.
    /// </summary>
    public int MaxReadBuffer { get; init; } = 32 * 1024;
}
