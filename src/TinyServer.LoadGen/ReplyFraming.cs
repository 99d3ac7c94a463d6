using System.Buffers;
using TinyServer.Protocol;

namespace TinyServer.LoadGen;

/// <summary>Takes the replies that <see cref="ReplyFraming"/> frames; false when the stream cannot be trusted any more.</summary>
internal interface IReplySink
{
    bool Take(ReadOnlySpan<byte> reply);
}

/// <summary>
/// Frames the replies of the two protocols where they lie in a connection's receive buffer, and hands each to a sink.
/// Generic over the sink, a struct, so the JIT compiles the loops for it: no delegate or interface call per reply.
/// </summary>
internal static class ReplyFraming
{
    /// <summary>
    /// TinyServer replies: a line each, framed by the protocol's <see cref="LineDecoder"/>. False when a line is too
    /// long to be a reply the load expects, or the sink refuses one; <paramref name="consumed"/> bytes are done with.
    /// </summary>
    public static bool TakeLines<TSink>(LineDecoder decoder, byte[] buffer, int filled, TSink sink, out int consumed)
        where TSink : struct, IReplySink
    {
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(buffer, 0, filled));
        bool inStep = true;
        while (inStep)
        {
            LineStatus status = decoder.TryReadLine(ref reader, isFinalBlock: false, telnetReplies: null, out ReadOnlySpan<byte> line);
            if (status == LineStatus.NeedMoreData)
            {
                break;
            }

            inStep = status == LineStatus.Line && sink.Take(line);
        }

        consumed = (int)reader.Consumed;
        return inStep;
    }

    /// <summary>
    /// Redis replies (RESP), framed by <see cref="Resp.FrameLength"/>. False for a malformed reply, a buffer that is
    /// <paramref name="full"/> without a whole reply (one too long), or a reply the sink refuses.
    /// </summary>
    public static bool TakeResp<TSink>(ReadOnlySpan<byte> received, bool full, TSink sink, out int consumed)
        where TSink : struct, IReplySink
    {
        consumed = 0;
        while (true)
        {
            int length = Resp.FrameLength(received[consumed..]);
            if (length == 0)
            {
                return consumed > 0 || !full;
            }

            if (length < 0 || !sink.Take(received.Slice(consumed, length)))
            {
                return false;
            }

            consumed += length;
        }
    }
}
