using System.Net.Sockets;

namespace TinyServer.LoadGen;

/// <summary>What went wrong, by kind. Each is an error: any of them makes the exit code 1.</summary>
internal enum ErrorKind
{
    /// <summary>A connection could not be opened, or did not get its banner before --connect-timeout.</summary>
    Connect,

    /// <summary>
    /// A request sent and never answered: its connection was closed or reset with it in flight, one per request. It is
    /// not sent again (the server may have executed it).
    /// </summary>
    Lost,

    /// <summary>No reply within --reply-timeout; or a -n run stopped by --timeout with requests left.</summary>
    Timeout,

    /// <summary>A reply that is not the one its request must get, or a reply nobody asked for.</summary>
    WrongReply,
}

/// <summary>Error counters of one run (kept by the run's one thread), with the reasons of the connect errors.</summary>
internal sealed class ErrorCounts
{
    public static readonly IReadOnlyList<ErrorKind> Kinds = Enum.GetValues<ErrorKind>();

    private readonly long[] _counts = new long[Kinds.Count];
    private readonly Dictionary<string, long> _connectReasons = new(StringComparer.Ordinal);

    /// <summary>Counts an error other than <see cref="ErrorKind.Connect"/>, which goes through <see cref="AddConnect"/>.</summary>
    public void Add(ErrorKind kind, long count = 1)
    {
        if (kind == ErrorKind.Connect)
        {
            throw new ArgumentException("a connect error needs its reason", nameof(kind));
        }

        _counts[(int)kind] += count;
    }

    /// <summary>Counts a connect error and why, e.g. <c>connection refused</c>.</summary>
    public void AddConnect(string reason)
    {
        _counts[(int)ErrorKind.Connect]++;
        _connectReasons[reason] = _connectReasons.GetValueOrDefault(reason) + 1;
    }

    /// <summary>The connect errors by reason, the most frequent first.</summary>
    public IReadOnlyList<KeyValuePair<string, long>> ConnectReasons =>
        [.. _connectReasons.OrderByDescending(reason => reason.Value).ThenBy(reason => reason.Key, StringComparer.Ordinal)];

    public long this[ErrorKind kind] => _counts[(int)kind];

    public long Total => _counts.Sum();

    /// <summary>The name used in the report and the JSON output, e.g. <c>wrong_reply</c>.</summary>
    public static string Name(ErrorKind kind) => kind switch
    {
        ErrorKind.Connect => "connect",
        ErrorKind.Lost => "lost",
        ErrorKind.Timeout => "timeout",
        ErrorKind.WrongReply => "wrong_reply",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>Why a socket call failed, in the system's words: <c>connection refused</c>, <c>connection reset by peer</c>.</summary>
    public static string Describe(SocketError error)
    {
        string message = new SocketException((int)error).Message;
        return message.Length > 1 && char.IsUpper(message[0]) && char.IsLower(message[1])
            ? char.ToLowerInvariant(message[0]) + message[1..]
            : message;
    }
}
