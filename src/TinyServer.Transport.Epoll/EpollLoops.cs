using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace TinyServer.Transport.Epoll;

/// <summary>
/// The event threads of the epoll transport. Each accepted connection is registered, edge-triggered, with one loop,
/// round-robin; the loop receives into the connection when it is readable and a read is waiting, and runs the handler
/// right there (the handler never blocks), as Redis does on its one thread: one receive and one send per request, no
/// hand-off to another thread. Linux only.
/// </summary>
/// <remarks>
/// An exception that escapes a connection's events (the transport's own code, or a continuation it runs inline, such
/// as the handler's) never ends the loop: it is logged once (<see cref="Log.LoopFault"/>), the connection is aborted,
/// and it is counted (<see cref="Faults"/>, the <c>tinyserver.transport.faults</c> counter). The other connections of
/// the loop are served on.
/// </remarks>
internal sealed class EpollLoops : IDisposable
{
    private readonly Loop[] _loops;
    private readonly ILogger _logger;
    private int _next = -1;
    private long _open;
    private long _faults;
    private volatile bool _stopping;

    public EpollLoops(int count, ILogger? logger = null)
    {
        _logger = logger ?? NullLogger.Instance;
        _loops = new Loop[count];
        for (int i = 0; i < count; i++)
        {
            _loops[i] = new Loop(this, i);
        }
    }

    /// <summary>
    /// Sockets accepted and not yet closed: counted from the accept, before Kestrel hands the connection to its handler,
    /// so that a descriptor reserve holds however fast connections arrive.
    /// </summary>
    public long Open => Interlocked.Read(ref _open);

    /// <summary>Exceptions caught in the loops since they started; each aborted its connection.</summary>
    public long Faults => Interlocked.Read(ref _faults);

    public void Add(EpollConnection connection)
    {
        Loop loop = _loops[(uint)Interlocked.Increment(ref _next) % (uint)_loops.Length];
        connection.Loop = loop;
        Interlocked.Increment(ref _open);
        loop.Add(connection);
    }

    public void Dispose() => _stopping = true; // The threads notice within a second and free their epoll instances.

    private void OnFault(EpollConnection connection, Exception exception)
    {
        Interlocked.Increment(ref _faults);
        Log.LoopFault(_logger, connection.ConnectionId, exception);
        try
        {
            connection.Abort(new ConnectionAbortedException("The transport's event loop caught an exception.", exception));
        }
        catch (Exception)
        {
            // A continuation failed again as the abort ended its read or flush: the fault is already logged and counted.
        }
    }

    internal sealed class Loop
    {
        private const int WaitMilliseconds = 1000; // Only to notice a stop: events wake the loop at once.

        /// <summary>Connections whose replies wait for the end of the turn, at most: then they are sent at once.</summary>
        private const int SendsPerBurst = 16;

        private readonly EpollLoops _owner;
        private readonly Interop.Epoll _epoll = new();
        private readonly Lock _slotsLock = new();
        private readonly Stack<int> _freeSlots = new();
        private readonly int _threadId;
        private EpollConnection?[] _slots = new EpollConnection?[64]; // Replaced (grown) under the lock; read without.
        private int _slotsUsed; // Slots ever handed out: the free ones below it are in _freeSlots.
        private List<EpollConnection> _deferred = [];
        private List<EpollConnection> _turn = [];
        private readonly List<EpollConnection> _sendLater = [];

        public Loop(EpollLoops owner, int index)
        {
            _owner = owner;
            var thread = new Thread(Run) { IsBackground = true, Name = $"TinyServer epoll {index}" };
            _threadId = thread.ManagedThreadId;
            thread.Start();
        }

        public bool IsCurrentThread => Environment.CurrentManagedThreadId == _threadId;

        /// <summary>On this loop's thread only: a connection whose read gave way, resumed after the events waiting now.</summary>
        public void Defer(EpollConnection connection) => _deferred.Add(connection);

        /// <summary>On this loop's thread only: a connection whose flush left its bytes for the end of this turn.</summary>
        public void SendLater(EpollConnection connection) => _sendLater.Add(connection);

        /// <summary>
        /// Registers <paramref name="connection"/> under a slot of this loop's table (a plain array: 8 bytes a
        /// connection, where a dictionary entry took about 60). The epoll data carries the slot and the low half of the
        /// connection's token, so that an event still queued for a closed connection never reaches the next one in its slot.
        /// </summary>
        public void Add(EpollConnection connection)
        {
            int slot;
            lock (_slotsLock)
            {
                slot = _freeSlots.Count > 0 ? _freeSlots.Pop() : _slotsUsed++;
                if (slot == _slots.Length)
                {
                    EpollConnection?[] larger = new EpollConnection?[_slots.Length * 2];
                    _slots.CopyTo(larger, 0);
                    Volatile.Write(ref _slots, larger);
                }

                _slots[slot] = connection;
                connection.Slot = slot;
            }

            _epoll.Register(connection.Socket, ((ulong)(uint)slot << 32) | (uint)connection.Token, Interop.Epoll.Readable | Interop.Epoll.Writable | Interop.Epoll.PeerClosed | Interop.Epoll.EdgeTriggered);
        }

        /// <summary>Called once by each connection as it closes its socket.</summary>
        public void Remove(EpollConnection connection)
        {
            lock (_slotsLock)
            {
                _slots[connection.Slot] = null;
                _freeSlots.Push(connection.Slot);
            }

            Interlocked.Decrement(ref _owner._open);
        }

        private EpollConnection? Find(ulong data)
        {
            EpollConnection? connection = Volatile.Read(ref _slots)[(int)(data >> 32)];
            return connection is not null && (uint)connection.Token == (uint)data ? connection : null;
        }

        private void Run()
        {
            while (!_owner._stopping)
            {
                int count = _epoll.WaitMilliseconds(_deferred.Count > 0 ? 0 : WaitMilliseconds);
                for (int i = 0; i < count; i++)
                {
                    if (Find(_epoll.Token(i)) is { } connection)
                    {
                        OnEvents(connection, _epoll.Events(i));
                    }

                    if (_sendLater.Count >= SendsPerBurst)
                    {
                        SendNow(); // A long turn (hundreds of events) does not hold every reply until its end.
                    }
                }

                if (_deferred.Count > 0)
                {
                    (_turn, _deferred) = (_deferred, _turn); // Those that give way again wait for the next round.
                    for (int i = 0; i < _turn.Count; i++)
                    {
                        OnTurn(_turn[i]);
                    }

                    _turn.Clear();
                }

                SendNow();
            }

            _epoll.Dispose();
        }

        private void OnEvents(EpollConnection connection, uint events)
        {
            try
            {
                connection.OnEvents(events);
            }
            catch (Exception e)
            {
                _owner.OnFault(connection, e);
            }
        }

        /// <summary>The replies left for the end of the turn, in a burst (one a handler flushes meanwhile is sent here too).</summary>
        private void SendNow()
        {
            for (int i = 0; i < _sendLater.Count; i++)
            {
                OnTurnEnd(_sendLater[i]);
            }

            _sendLater.Clear();
        }

        private void OnTurnEnd(EpollConnection connection)
        {
            try
            {
                connection.OnTurnEnd();
            }
            catch (Exception e)
            {
                _owner.OnFault(connection, e);
            }
        }

        private void OnTurn(EpollConnection connection)
        {
            try
            {
                connection.OnTurn();
            }
            catch (Exception e)
            {
                _owner.OnFault(connection, e);
            }
        }
    }
}
