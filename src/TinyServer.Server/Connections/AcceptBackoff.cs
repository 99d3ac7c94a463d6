namespace TinyServer.Server;

/// <summary>
/// How long a listener waits before accepting again after accepting failed for lack of resources (out of file
/// descriptors, out of memory): 10 ms, doubling up to 1 s, until an accept succeeds (<see cref="Reset"/>). Kestrel's
/// own listener retries at once, holding a core at 100% until descriptors free up. One listener's state; not shared.
/// </summary>
internal sealed class AcceptBackoff
{
    private const int MinDelayMs = 10;
    private const int MaxDelayMs = 1000;

    private int _delayMs;

    /// <summary>True when the last failure began an episode (the accept before it succeeded): warn once, not per retry.</summary>
    public bool EpisodeStarted => _delayMs == MinDelayMs;

    /// <summary>
    /// Starts the runtime's timer thread while resources are plentiful: the wait must not need resources, and the
    /// first <see cref="Task.Delay(int)"/> may have to start that thread, which fails out of descriptors. Called at bind.
    /// </summary>
    public static void StartTimer() => Task.Delay(1, CancellationToken.None).Wait(CancellationToken.None);

    /// <summary>Accepting failed: the delay to wait before the next try (the minimum first, then doubling), in ms.</summary>
    public int NextDelayMs() => _delayMs = _delayMs == 0 ? MinDelayMs : Math.Min(_delayMs * 2, MaxDelayMs);

    /// <summary>Accepting succeeded: the next failure starts from the minimum again.</summary>
    public void Reset() => _delayMs = 0;
}
