namespace TinyServer.ClientLibrary;

/// <summary>
/// Requests that were sent and never answered: the connection closed or broke with them in flight, without the
/// server's notice that it had not executed them. The server may or may not have executed them, so they were not
/// sent again; <see cref="Answered"/> holds the replies that did come (of a pipeline, in order).
/// </summary>
public sealed class RequestLostException(string message, IReadOnlyList<string> answered, IReadOnlyList<string> unanswered, Exception? inner = null)
    : IOException(message, inner)
{
    /// <summary>The replies received before the connection ended, one per command from the first.</summary>
    public IReadOnlyList<string> Answered { get; } = answered;

    /// <summary>The commands whose replies never came (they may have been executed).</summary>
    public IReadOnlyList<string> Unanswered { get; } = unanswered;
}

/// <summary>
/// How a <see cref="ReconnectingTinyServerClient"/> replaces its connection. Its <c>ConnectAsync</c> checks the ranges
/// before it dials (an <see cref="ArgumentOutOfRangeException"/>, or <see cref="ArgumentNullException"/> for a null
/// <see cref="TimeProvider"/>, names the property).
/// </summary>
public sealed record ReconnectOptions
{
    /// <summary>The longest <see cref="ConnectTimeout"/>: an hour.</summary>
    public static readonly TimeSpan LongestConnectTimeout = TimeSpan.FromHours(1);

    /// <summary>The shortest <see cref="FirstBackoff"/> and <see cref="MaxBackoff"/>: a millisecond (no busy redialling).</summary>
    public static readonly TimeSpan ShortestBackoff = TimeSpan.FromMilliseconds(1);

    /// <summary>The longest <see cref="FirstBackoff"/> and <see cref="MaxBackoff"/>: a minute.</summary>
    public static readonly TimeSpan LongestBackoff = TimeSpan.FromMinutes(1);

    /// <summary>
    /// How long the replacing of a connection may take, from when it ended with no request answered since (default 30 s;
    /// 0 to <see cref="LongestConnectTimeout"/>; 0: a connection that ended is not replaced). The first dial is made at
    /// once; each further one, after a failed dial (refused, closed before the banner) or a new connection ended before
    /// it answered a request (a closing notice), waits <see cref="FirstBackoff"/>, doubling up to
    /// <see cref="MaxBackoff"/>, and starts again from <see cref="FirstBackoff"/> once a request is answered. No dial is
    /// made at or after the deadline, and none outlives it: one still under way then (connected but no banner, a connect
    /// or TLS handshake not done) is abandoned (closed). Then the last failure is thrown, or a
    /// <see cref="System.TimeoutException"/> when there was none (a dial abandoned, or 0).
    /// </summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The wait after the first dial of a reconnect that failed or whose connection ended before it answered a request
    /// (default 50 ms; <see cref="ShortestBackoff"/> to <see cref="LongestBackoff"/>).
    /// </summary>
    public TimeSpan FirstBackoff { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>The longest wait between two dials of a reconnect (default 1 s; <see cref="ShortestBackoff"/> to <see cref="LongestBackoff"/>, not less than <see cref="FirstBackoff"/>).</summary>
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The clock that the waits between dials and <see cref="ConnectTimeout"/> are measured on (default
    /// <see cref="TimeProvider.System"/>; a test can give a fake one and advance it).
    /// </summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    internal void Validate()
    {
        ArgumentNullException.ThrowIfNull(TimeProvider, nameof(TimeProvider));
        ArgumentOutOfRangeException.ThrowIfLessThan(ConnectTimeout, TimeSpan.Zero, nameof(ConnectTimeout));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(ConnectTimeout, LongestConnectTimeout, nameof(ConnectTimeout));
        ArgumentOutOfRangeException.ThrowIfLessThan(FirstBackoff, ShortestBackoff, nameof(FirstBackoff));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(FirstBackoff, LongestBackoff, nameof(FirstBackoff));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxBackoff, FirstBackoff, nameof(MaxBackoff));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MaxBackoff, LongestBackoff, nameof(MaxBackoff));
    }
}
