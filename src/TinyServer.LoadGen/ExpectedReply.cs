using TinyServer.Protocol;

namespace TinyServer.LoadGen;

/// <summary>How a reply is checked.</summary>
internal enum ReplyShape
{
    /// <summary>The reply must be these bytes, byte for byte.</summary>
    Exact,

    /// <summary>A TinyServer time-reply (<see cref="ReplyReader.IsTimeReply"/>).</summary>
    Time,

    /// <summary>A Redis TIME reply: an array of two bulk strings of digits (<see cref="Resp.IsTimeReply"/>).</summary>
    RedisTime,
}

/// <summary>
/// The reply one request must get. A TinyServer reply is compared without its line ending, a Redis reply as the
/// whole RESP frame. Comparing bytes allocates nothing.
/// </summary>
internal sealed class ExpectedReply(ReplyShape shape, byte[] exact)
{
    public static ExpectedReply Bytes(ReadOnlySpan<byte> exact) => new(ReplyShape.Exact, exact.ToArray());

    public static ExpectedReply Of(ReplyShape shape) => new(shape, []);

    /// <summary>The longest reply that can match (the receive buffer must hold it).</summary>
    public int MaxLength => shape switch
    {
        ReplyShape.Exact => exact.Length,
        ReplyShape.Time => ReplyWriter.TimeLineLength,
        _ => Resp.MaxTimeReplyLength,
    };

    public bool Matches(ReadOnlySpan<byte> reply) => shape switch
    {
        ReplyShape.Exact => reply.SequenceEqual(exact),
        ReplyShape.Time => ReplyReader.IsTimeReply(reply),
        _ => Resp.IsTimeReply(reply),
    };
}
