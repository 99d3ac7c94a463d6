using System.Buffers;
using TinyServer.Protocol;
using TinyServer.Tests.Protocol;

namespace TinyServer.Tests.Properties;

/// <summary>
/// Drives a <see cref="ServerSession"/> as the Kestrel handler does: each chunk is appended, as its own segment, to what was not consumed, then
/// processed; <see cref="SessionStatus.OutputFull"/> is called again at once; half-close is a last, final call.
/// On top of that it measures what the session holds for an unfinished line after every call.
/// </summary>
public static class SessionDriver
{
    /// <param name="Output">Every byte the session wrote.</param>
    /// <param name="Closed">The session returned <see cref="SessionStatus.Closed"/>.</param>
    /// <param name="MaxHeldWaiting">The most held for an unfinished line when the session asked for more input:
    /// the unconsumed bytes plus <see cref="ServerSession.HeldBytes"/>.</param>
    /// <param name="MaxHeldBytes">The largest <see cref="ServerSession.HeldBytes"/> after any call that did not close.</param>
    /// <param name="Calls">How many times <see cref="ServerSession.Process(ReadOnlySequence{byte}, bool, IBufferWriter{byte}, int, out SequencePosition)"/> ran.</param>
    public sealed record Result(byte[] Output, bool Closed, CloseReason Reason, int MaxHeldWaiting, int MaxHeldBytes, int Calls);

    public static Result Run(IReadOnlyList<byte[]> chunks, bool halfClose, int maxLineLength, int outputBudget, TimeProvider time)
    {
        using var session = new ServerSession(time, maxLineLength);
        var output = new ArrayBufferWriter<byte>();
        var pending = new List<byte[]>();
        int maxHeldWaiting = 0;
        int maxHeldBytes = 0;
        int calls = 0;
        for (int i = 0; i <= chunks.Count; i++)
        {
            bool final = i == chunks.Count;
            if (final && !halfClose)
            {
                break;
            }

            if (!final)
            {
                pending.Add(chunks[i]);
            }

            SessionStatus status;
            do
            {
                ReadOnlySequence<byte> input = Segment.Sequence(pending);
                int writtenBefore = output.WrittenCount;
                status = session.Process(input, final, output, outputBudget, out SequencePosition consumed);
                calls++;
                if (status == SessionStatus.Closed)
                {
                    return new Result(output.WrittenSpan.ToArray(), true, session.CloseReason, maxHeldWaiting, maxHeldBytes, calls);
                }

                ReadOnlySequence<byte> rest = input.Slice(consumed);
                if (status == SessionStatus.OutputFull && rest.Length == input.Length && output.WrittenCount == writtenBefore)
                {
                    throw new InvalidOperationException("OutputFull without consuming or writing anything: the host would spin.");
                }

                pending = [];
                foreach (ReadOnlyMemory<byte> segment in rest)
                {
                    pending.Add(segment.ToArray());
                }

                maxHeldBytes = Math.Max(maxHeldBytes, session.HeldBytes);
                if (status == SessionStatus.NeedMoreInput)
                {
                    // Every complete line was answered: what is left is one unfinished line.
                    maxHeldWaiting = Math.Max(maxHeldWaiting, (int)rest.Length + session.HeldBytes);
                }
            }
            while (status == SessionStatus.OutputFull);
        }

        return new Result(output.WrittenSpan.ToArray(), false, session.CloseReason, maxHeldWaiting, maxHeldBytes, calls);
    }
}
