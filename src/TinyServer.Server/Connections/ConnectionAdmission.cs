namespace TinyServer.Server;

/// <summary>
/// Whether a listener may accept one more connection: not while connections would eat into the descriptors the
/// runtime needs (<see cref="FileDescriptorLimit"/>). Connections are counted twice, by the handler
/// (<see cref="ConnectionTracker"/>) and by the transport (<see cref="IConnectionTransport.Open"/>, which also holds
/// sockets the handler has not seen yet or has already let go); the larger count is the one that holds descriptors.
/// </summary>
internal sealed class ConnectionAdmission(FileDescriptorLimit descriptors, ConnectionTracker tracker, IConnectionTransport transport)
{
    /// <summary>True when one more connection still leaves the descriptor reserve free.</summary>
    public bool HasRoom => descriptors.HasRoomFor(Math.Max(tracker.Open, transport.Open));
}
