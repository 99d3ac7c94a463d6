using System.Net;

namespace TinyServer.Server;

/// <summary>Why a connection was closed before its PROXY protocol header was accepted.</summary>
public enum ProxyRejection
{
    /// <summary>The peer is not a trusted proxy (<c>--trusted-proxy</c>).</summary>
    UntrustedPeer,

    /// <summary>The bytes are not a valid PROXY protocol header.</summary>
    InvalidHeader,

    /// <summary>No complete header within <c>--proxy-header-timeout</c>.</summary>
    Timeout,

    /// <summary>The peer closed or reset the connection before a complete header.</summary>
    ClosedEarly,
}

/// <summary>Beaten about once a second while registered with <see cref="ConnectionTracker.StartBeating"/>: a connection's idle clock.</summary>
internal interface IHeartbeat
{
    void OnHeartbeat();
}

/// <summary>
/// Counts connections: admits up to the limits (in all, and per client address), and tallies how they ended. Also
/// the heartbeat of the served connections' idle clocks (<see cref="StartBeating"/>). Thread-safe.
/// </summary>
public sealed class ConnectionTracker(ServerOptions options, ILogger<ConnectionTracker>? logger = null) : IDisposable
{
    private readonly Dictionary<IPAddress, int> _perAddress = [];
    private readonly long[] _proxyRejected = new long[Enum.GetValues<ProxyRejection>().Length];
    private long _active;
    private long _accepted;
    private long _rejected;
    private long _rejectedPerAddress;
    private long _drained;
    private long _aborted;
    private long _awaitingHeader;
    private long _proxyAccepted;
    private readonly Lock _beatsLock = new();
    private readonly Stack<int> _freeBeats = new();
    private IHeartbeat?[] _beats = new IHeartbeat?[64]; // Replaced (grown) under the lock; read without.
    private int _beatsUsed; // Slots ever handed out: the free ones below it are in _freeBeats.
    private Timer? _timer;
    private int _beating;
    private bool _disposed;

    /// <summary>False: nothing beats but <see cref="Beat"/> (tests that beat by hand, on a clock of their own).</summary>
    internal bool BeatEverySecond { get; init; } = true;

    public long Active => Interlocked.Read(ref _active);

    /// <summary>Connections open but not yet admitted: waiting for their PROXY protocol header.</summary>
    public long AwaitingHeader => Interlocked.Read(ref _awaitingHeader);

    /// <summary>Every connection holding a descriptor: admitted ones and those waiting for their PROXY header.</summary>
    public long Open => Active + AwaitingHeader;

    public long Accepted => Interlocked.Read(ref _accepted);

    /// <summary>Connections turned away with <c>ERROR TOO_MANY_CONNECTIONS</c>, at either limit.</summary>
    public long Rejected => Interlocked.Read(ref _rejected);

    /// <summary>Of <see cref="Rejected"/>, those turned away by <see cref="ServerOptions.MaxConnectionsPerAddress"/>.</summary>
    public long RejectedPerAddress => Interlocked.Read(ref _rejectedPerAddress);

    /// <summary>Connections closed by shutdown after every answer and <c>ERROR SHUTTING_DOWN</c>.</summary>
    public long Drained => Interlocked.Read(ref _drained);

    /// <summary>Connections cut by shutdown before they could drain (e.g. a peer that does not read).</summary>
    public long Aborted => Interlocked.Read(ref _aborted);

    /// <summary>Connections whose PROXY protocol header was accepted.</summary>
    public long ProxyAccepted => Interlocked.Read(ref _proxyAccepted);

    /// <summary>Connections closed before their PROXY protocol header was accepted, for this reason.</summary>
    public long ProxyRejected(ProxyRejection reason) => Interlocked.Read(ref _proxyRejected[(int)reason]);

    /// <summary>
    /// The key <see cref="ServerOptions.MaxConnectionsPerAddress"/> counts a connection under: its (original) IP
    /// address, IPv4-mapped IPv6 as IPv4; null when that limit is off or the endpoint has no IP address.
    /// </summary>
    public IPAddress? AddressKey(EndPoint? remote) =>
        options.MaxConnectionsPerAddress > 0 && remote is IPEndPoint ip
            ? (ip.Address.IsIPv4MappedToIPv6 ? ip.Address.MapToIPv4() : ip.Address)
            : null;

    /// <summary>
    /// Admits a connection unless <see cref="ServerOptions.MaxConnections"/> are being served, or
    /// <see cref="ServerOptions.MaxConnectionsPerAddress"/> from <paramref name="address"/> (see <see cref="AddressKey"/>).
    /// </summary>
    public bool TryAdmit(IPAddress? address = null) => TryAdmit(address, out _);

    /// <inheritdoc cref="TryAdmit(IPAddress?)"/>
    /// <param name="address">See <see cref="AddressKey"/>.</param>
    /// <param name="rejection">When refused, which limit: one of <see cref="RejectionReasons"/>.</param>
    public bool TryAdmit(IPAddress? address, out string? rejection)
    {
        rejection = null;
        if (Interlocked.Increment(ref _active) > options.MaxConnections)
        {
            Interlocked.Decrement(ref _active);
            Interlocked.Increment(ref _rejected);
            rejection = RejectionReasons.MaxConnections;
            return false;
        }

        if (address is not null)
        {
            lock (_perAddress)
            {
                int count = _perAddress.GetValueOrDefault(address);
                if (count >= options.MaxConnectionsPerAddress)
                {
                    Interlocked.Decrement(ref _active);
                    Interlocked.Increment(ref _rejected);
                    Interlocked.Increment(ref _rejectedPerAddress);
                    rejection = RejectionReasons.MaxConnectionsPerAddress;
                    return false;
                }

                _perAddress[address] = count + 1;
            }
        }

        Interlocked.Increment(ref _accepted);
        return true;
    }

    /// <summary>Ends an admitted connection; <paramref name="address"/> as given to <see cref="TryAdmit"/>.</summary>
    public void Leave(IPAddress? address = null)
    {
        if (address is not null)
        {
            lock (_perAddress)
            {
                int count = _perAddress[address] - 1;
                if (count == 0)
                {
                    _perAddress.Remove(address);
                }
                else
                {
                    _perAddress[address] = count;
                }
            }
        }

        Interlocked.Decrement(ref _active);
    }

    /// <summary>Client addresses with at least one connection being served (with the per-address limit on).</summary>
    public int AddressesServed
    {
        get
        {
            lock (_perAddress)
            {
                return _perAddress.Count;
            }
        }
    }

    /// <summary>
    /// Beats <paramref name="heartbeat"/> about once a second from now on, until <see cref="StopBeating"/> with the
    /// slot returned: one timer for every connection, as Kestrel's heartbeat, but a table slot (8 bytes) for each
    /// connection where Kestrel's per-connection list of heartbeat handlers took about 120.
    /// </summary>
    internal int StartBeating(IHeartbeat heartbeat)
    {
        lock (_beatsLock)
        {
            int slot = _freeBeats.Count > 0 ? _freeBeats.Pop() : _beatsUsed++;
            if (slot == _beats.Length)
            {
                IHeartbeat?[] larger = new IHeartbeat?[_beats.Length * 2];
                _beats.CopyTo(larger, 0);
                Volatile.Write(ref _beats, larger);
            }

            _beats[slot] = heartbeat;
            if (_timer is null && BeatEverySecond && !_disposed)
            {
                // Not in the first connection's execution context (its log scope): the timer belongs to no connection.
                using (ExecutionContext.SuppressFlow())
                {
                    _timer = new Timer(static state => ((ConnectionTracker)state!).Beat(), this, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
                }
            }

            return slot;
        }
    }

    /// <summary>Beats no more the heartbeat of <paramref name="slot"/>; one already under way may still reach it.</summary>
    internal void StopBeating(int slot)
    {
        lock (_beatsLock)
        {
            _beats[slot] = null;
            _freeBeats.Push(slot);
        }
    }

    /// <summary>One heartbeat of every registered clock, on the calling thread; skipped while the last one still runs.</summary>
    internal void Beat()
    {
        if (Interlocked.Exchange(ref _beating, 1) != 0)
        {
            return;
        }

        try
        {
            IHeartbeat?[] beats = Volatile.Read(ref _beats);
            int used = Math.Min(Volatile.Read(ref _beatsUsed), beats.Length);
            for (int i = 0; i < used; i++)
            {
                try
                {
                    Volatile.Read(ref beats[i])?.OnHeartbeat();
                }
                catch (Exception e)
                {
                    // As Kestrel's heartbeat: logged, and the other connections are beaten on.
                    Log.HeartbeatFailed(logger ?? (ILogger)Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, e);
                }
            }
        }
        finally
        {
            Volatile.Write(ref _beating, 0);
        }
    }

    /// <summary>Stops the heartbeat.</summary>
    public void Dispose()
    {
        lock (_beatsLock)
        {
            _disposed = true;
            _timer?.Dispose();
            _timer = null;
        }
    }

    public void CountDrained() => Interlocked.Increment(ref _drained);

    public void CountAborted() => Interlocked.Increment(ref _aborted);

    public void HeaderAwaited() => Interlocked.Increment(ref _awaitingHeader);

    public void HeaderDone() => Interlocked.Decrement(ref _awaitingHeader);

    public void CountProxyAccepted() => Interlocked.Increment(ref _proxyAccepted);

    public void CountProxyRejected(ProxyRejection reason) => Interlocked.Increment(ref _proxyRejected[(int)reason]);
}
