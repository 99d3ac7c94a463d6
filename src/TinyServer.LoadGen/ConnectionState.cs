namespace TinyServer.LoadGen;

/// <summary>Where a connection is in its life.</summary>
internal enum ConnectionState
{
    /// <summary>Waiting in the dial queue (at the start, or to replace a connection that ended).</summary>
    Idle,

    /// <summary>A redial failed (refused, closed before the banner), or its connection ended before any reply: waiting the backoff before the next try.</summary>
    Waiting,

    /// <summary>The TCP connect is under way.</summary>
    Connecting,

    /// <summary>Connected; the TLS handshake is under way (--tls).</summary>
    Handshaking,

    /// <summary>Connected; waiting for the banner.</summary>
    Greeting,

    /// <summary>Sending requests and reading replies.</summary>
    Open,

    /// <summary>Its share of the -n requests is answered.</summary>
    Done,

    /// <summary>Broke (counted in the errors) and is not replaced: a wrong reply, a timeout, or no redial within --connect-timeout.</summary>
    Dead,
}
