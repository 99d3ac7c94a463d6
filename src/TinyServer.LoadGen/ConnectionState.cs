namespace TinyServer.LoadGen;

/// <summary>Where a connection is in its life.</summary>
internal enum ConnectionState
{
    /// <summary>Waiting in the dial queue (at the start, or between sessions).</summary>
    Idle,

    /// <summary>The TCP connect is under way.</summary>
    Connecting,

    /// <summary>Connected; waiting for the banner.</summary>
    Greeting,

    /// <summary>Sending requests and reading replies.</summary>
    Open,

    /// <summary>Its share of the -n requests is answered.</summary>
    Done,

    /// <summary>Broke (counted in the errors) and is not replaced.</summary>
    Dead,
}
