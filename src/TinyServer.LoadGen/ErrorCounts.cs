namespace TinyServer.LoadGen;

/// <summary>What went wrong, by kind. Each is an error: any of them makes the exit code 1.</summary>
internal enum ErrorKind
{
    /// <summary>A connection could not be opened, or did not get its banner before --connect-timeout.</summary>
    Connect,

    /// <summary>The server closed (or reset) a connection that was waiting for replies.</summary>
    Closed,

    /// <summary>No reply within --reply-timeout; or a -n run stopped by --timeout with requests left.</summary>
    Timeout,

    /// <summary>A reply that is not the one its request must get, or a reply nobody asked for.</summary>
    WrongReply,
}

/// <summary>Error counters of one run (kept by the run's one thread).</summary>
internal sealed class ErrorCounts
{
    public static readonly IReadOnlyList<ErrorKind> Kinds = Enum.GetValues<ErrorKind>();

    private readonly long[] _counts = new long[Kinds.Count];

    public void Add(ErrorKind kind) => _counts[(int)kind]++;

    public long this[ErrorKind kind] => _counts[(int)kind];

    public long Total => _counts.Sum();

    /// <summary>The name used in the report and the JSON output, e.g. <c>wrong_reply</c>.</summary>
    public static string Name(ErrorKind kind) => kind switch
    {
        ErrorKind.Connect => "connect",
        ErrorKind.Closed => "closed",
        ErrorKind.Timeout => "timeout",
        ErrorKind.WrongReply => "wrong_reply",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };
}
