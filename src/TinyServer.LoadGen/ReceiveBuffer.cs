using System.Buffers;
using TinyServer.Protocol;

namespace TinyServer.LoadGen;

/// <summary>
/// Reply bytes read from one connection and not yet framed, at the front of an array allocated once, with the line
/// decoder that frames TinyServer lines (and the banner) in it. A struct inside its connection.
/// </summary>
internal struct ReceiveBuffer(int capacity)
{
    private readonly byte[] _bytes = new byte[capacity];
    private LineDecoder _decoder = NewDecoder(capacity);
    private int _filled;

    /// <summary>Where the next read goes.</summary>
    public readonly Span<byte> Free => _bytes.AsSpan(_filled);

    public void Received(int count) => _filled += count;

    /// <summary>Drops the <paramref name="consumed"/> bytes at the front (framed replies), keeping the rest.</summary>
    public void Consume(int consumed)
    {
        _bytes.AsSpan(consumed, _filled - consumed).CopyTo(_bytes);
        _filled -= consumed;
    }

    /// <summary>Empty, with a fresh line decoder: a new dial.</summary>
    public void Reset()
    {
        _filled = 0;
        _decoder.Dispose();
        _decoder = NewDecoder(_bytes.Length);
    }

    /// <summary>
    /// Looks for the banner: null until a whole line is in, then whether it is <paramref name="banner"/> (taken from
    /// the buffer when it is). A line too long to be a banner is not the banner.
    /// </summary>
    public bool? ReadBanner(ExpectedReply banner)
    {
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(_bytes, 0, _filled));
        LineStatus status = _decoder.TryReadLine(ref reader, isFinalBlock: false, telnetReplies: null, out ReadOnlySpan<byte> line);
        if (status == LineStatus.NeedMoreData)
        {
            return null;
        }

        if (status != LineStatus.Line || !banner.Matches(line))
        {
            return false;
        }

        Consume((int)reader.Consumed);
        return true;
    }

    /// <summary>
    /// Hands every whole reply in the buffer to <paramref name="sink"/> and drops them; false when the stream cannot be
    /// trusted any more (see <see cref="ReplyFraming"/>).
    /// </summary>
    public bool TakeReplies<TSink>(bool resp, TSink sink)
        where TSink : struct, IReplySink
    {
        bool inStep = resp
            ? ReplyFraming.TakeResp(_bytes.AsSpan(0, _filled), full: _filled == _bytes.Length, sink, out int consumed)
            : ReplyFraming.TakeLines(_decoder, _bytes, _filled, sink, out consumed);
        Consume(consumed);
        return inStep;
    }

    // A reply longer than the buffer can hold is longer than any reply the load expects.
    private static LineDecoder NewDecoder(int capacity) => new(capacity - 2);
}
