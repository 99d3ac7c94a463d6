using System.Runtime.CompilerServices;

namespace TinyServer.LoadGen;

/// <summary>
/// Request bytes on their way out of one connection: copied in from the workload's precomputed requests, written
/// from <see cref="Unsent"/>, moved to the front before more are added. A struct inside its connection, with its
/// array allocated once.
/// </summary>
internal struct SendBuffer(int capacity)
{
    private readonly byte[] _bytes = new byte[capacity];
    private int _offset;

    public readonly int Capacity => _bytes.Length;

    /// <summary>Bytes in the buffer, sent or not.</summary>
    public int Length { get; private set; }

    public readonly ReadOnlySpan<byte> Unsent => _bytes.AsSpan(_offset, Length - _offset);

    /// <summary>Moves what is still unsent to the front, so that requests can be added behind it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void MoveToFront()
    {
        if (_offset > 0)
        {
            _bytes.AsSpan(_offset, Length - _offset).CopyTo(_bytes);
            Length -= _offset;
            _offset = 0;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Append(byte[] request)
    {
        request.CopyTo(_bytes.AsSpan(Length));
        Length += request.Length;
    }

    /// <summary>Counts <paramref name="sent"/> bytes as written; true while some are still unsent.</summary>
    public bool Sent(int sent)
    {
        _offset += sent;
        if (_offset < Length)
        {
            return true;
        }

        Clear();
        return false;
    }

    public void Clear()
    {
        _offset = 0;
        Length = 0;
    }
}
