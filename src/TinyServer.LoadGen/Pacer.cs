using System.Runtime.CompilerServices;

namespace TinyServer.LoadGen;

/// <summary>
/// At --rate, when one connection's next request falls due: one every <see cref="RunState.RateInterval"/>. A request
/// sent late still counts its latency from when it was due (coordinated omission corrected, as wrk2 does).
/// </summary>
internal struct Pacer
{
    /// <summary>When the next request is due.</summary>
    public long NextDue { get; private set; }

    public void Start(long firstDue) => NextDue = firstDue;

    /// <summary>
    /// Whether a request may go at <paramref name="now"/>, and the time its latency counts from: now without a rate
    /// (<paramref name="interval"/> 0), else its due time, and the one after is due an interval later.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryTake(long now, long interval, out long sentAt)
    {
        sentAt = now;
        if (interval > 0)
        {
            if (NextDue > now)
            {
                return false;
            }

            sentAt = NextDue;
            NextDue += interval;
        }

        return true;
    }
}
