using System.Runtime.CompilerServices;

namespace TinyServer.LoadGen;

/// <summary>
/// The requests one connection has in flight, oldest first: when each was (meant to be) sent, and what it was (a
/// command index, or <see cref="Workload.QuitIndex"/>). Replies come in request order, so each takes the oldest. A
/// struct inside its connection, with arrays allocated once: nothing is allocated per request.
/// </summary>
internal struct RequestRing(int capacity)
{
    private readonly long[] _sentAt = new long[capacity];
    private readonly int[] _command = new int[capacity];
    private int _head;

    public int Count { get; private set; }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Add(int command, long sentAt)
    {
        int slot = _head + Count;
        slot = slot >= _sentAt.Length ? slot - _sentAt.Length : slot;
        _sentAt[slot] = sentAt;
        _command[slot] = command;
        Count++;
    }

    /// <summary>The oldest request, which the reply just read answers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void TakeOldest(out int command, out long sentAt)
    {
        int slot = _head;
        _head = slot + 1 == _sentAt.Length ? 0 : slot + 1;
        Count--;
        command = _command[slot];
        sentAt = _sentAt[slot];
    }

    /// <summary>Puts back the request <see cref="TakeOldest"/> just took (its reply was a closing notice, not its answer).</summary>
    public void Untake()
    {
        _head = _head == 0 ? _sentAt.Length - 1 : _head - 1;
        Count++;
    }

    /// <summary>Drops the newest request (the QUIT of a session that ends anyway).</summary>
    public void DropNewest() => Count--;

    /// <summary>The command of the <paramref name="index"/>th oldest request in flight.</summary>
    public readonly int CommandAt(int index)
    {
        int slot = _head + index;
        return _command[slot >= _command.Length ? slot - _command.Length : slot];
    }

    /// <summary>Forgets every request.</summary>
    public void Clear()
    {
        _head = 0;
        Count = 0;
    }
}
