namespace TinyServer.Server;

/// <summary>Counts connections: admits up to the limit, and tallies how they ended. Thread-safe.</summary>
public sealed class ConnectionTracker(ServerOptions options)
{
    private long _active;
    private long _accepted;
    private long _rejected;
    private long _drained;
    private long _aborted;

    public long Active => Interlocked.Read(ref _active);

    public long Accepted => Interlocked.Read(ref _accepted);

    /// <summary>Connections turned away with <c>ERROR TOO_MANY_CONNECTIONS</c>.</summary>
    public long Rejected => Interlocked.Read(ref _rejected);

    /// <summary>Connections closed by shutdown after every answer and <c>ERROR SHUTTING_DOWN</c>.</summary>
    public long Drained => Interlocked.Read(ref _drained);

    /// <summary>Connections cut by shutdown before they could drain (e.g. a peer that does not read).</summary>
    public long Aborted => Interlocked.Read(ref _aborted);

    /// <summary>Admits a connection unless <see cref="ServerOptions.MaxConnections"/> are being served.</summary>
    public bool TryAdmit()
    {
        if (Interlocked.Increment(ref _active) > options.MaxConnections)
        {
            Interlocked.Decrement(ref _active);
            Interlocked.Increment(ref _rejected);
            return false;
        }

        Interlocked.Increment(ref _accepted);
        return true;
    }

    public void Leave() => Interlocked.Decrement(ref _active);

    public void CountDrained() => Interlocked.Increment(ref _drained);

    public void CountAborted() => Interlocked.Increment(ref _aborted);
}
