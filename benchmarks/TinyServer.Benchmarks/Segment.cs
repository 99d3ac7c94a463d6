using System.Buffers;

namespace TinyServer.Benchmarks;

/// <summary>A buffer segment, to build a <see cref="ReadOnlySequence{T}"/> of several segments.</summary>
internal sealed class Segment : ReadOnlySequenceSegment<byte>
{
    public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
    {
        Memory = memory;
        RunningIndex = runningIndex;
    }

    public Segment Append(ReadOnlyMemory<byte> memory)
    {
        var next = new Segment(memory, RunningIndex + Memory.Length);
        Next = next;
        return next;
    }
}
