using System.Buffers;
using System.Text;
using TinyServer.Protocol;

namespace TinyServer.LoadGen;

/// <summary>
/// The requests of a run, as bytes computed once, each with the reply it must get, and the order in which a
/// connection sends them (the weighted mix, interleaved). The hot path only copies and compares these bytes.
/// </summary>
internal sealed class Workload
{
    /// <summary>The longest ECHO payload: an ECHO line of 1 MiB, the most a server can be configured to take.</summary>
    public const int MaxPayloadSize = (1024 * 1024) - 5;

    /// <summary>The index in <see cref="Schedule"/>'s terms of the QUIT that ends a session.</summary>
    public const int QuitIndex = -1;

    private Workload(bool redis, IReadOnlyList<(byte[] Request, ExpectedReply Reply)> commands, int[] schedule, byte[] quit, ExpectedReply bye, string description)
    {
        Redis = redis;
        Requests = [.. commands.Select(c => c.Request)];
        Replies = [.. commands.Select(c => c.Reply)];
        Schedule = schedule;
        Quit = quit;
        Bye = bye;
        Description = description;
        LongestRequest = Math.Max(quit.Length, Requests.Max(r => r.Length));
        LongestReply = Math.Max(Math.Max(bye.MaxLength, Banner.MaxLength), Replies.Max(r => r.MaxLength));
    }

    public bool Redis { get; }

    /// <summary>Request bytes (line ending included), by command index.</summary>
    public byte[][] Requests { get; }

    /// <summary>The reply each command must get, by command index.</summary>
    public ExpectedReply[] Replies { get; }

    /// <summary>Command indices in sending order; each connection walks it round and round.</summary>
    public int[] Schedule { get; }

    public byte[] Quit { get; }

    /// <summary>The reply to <see cref="Quit"/>.</summary>
    public ExpectedReply Bye { get; }

    public static ExpectedReply Banner { get; } = ExpectedReply.Bytes(Wire.Banner[..^1]);

    /// <summary>The mix as the report shows it, e.g. <c>ECHO hello:3,TIME:1</c>.</summary>
    public string Description { get; }

    public int LongestRequest { get; }

    public int LongestReply { get; }

    /// <summary>
    /// Receive buffer for one connection: the replies of a full pipeline, within 4 to 64 KiB (one read takes them
    /// all), and at least two of the longest reply (a reply always fits).
    /// </summary>
    public int ReceiveBufferSize(int pipeline) =>
        Math.Max(2 * (LongestReply + 2), (int)Math.Clamp((long)pipeline * (LongestReply + 2), 4096, 64 * 1024));

    public bool Matches(int command, ReadOnlySpan<byte> reply) =>
        (command == QuitIndex ? Bye : Replies[command]).Matches(reply);

    public static Workload Create(LoadOptions options)
    {
        byte[]? payload = options.PayloadSize is int size ? Payload(size) : null;
        var commands = new List<(byte[], ExpectedReply)>();
        var described = new List<string>();
        bool sawEcho = false;
        foreach (CommandSpec spec in options.Commands)
        {
            byte[] line = Encoding.UTF8.GetBytes(spec.Line);
            bool echo = options.Redis ? WordIs(line, "ECHO"u8) : Commands.Parse(line, out _) == Command.Echo;
            if (echo && payload is not null)
            {
                line = [.. Wire.EchoPrefix, .. payload];
            }

            sawEcho |= echo;
            commands.Add(options.Redis ? RedisCommand(line) : TinyServerCommand(line));
            string text = echo && payload is not null ? $"ECHO <{payload.Length} bytes>" : spec.Line;
            described.Add(spec.Weight == 1 && options.Commands.Count == 1 ? text : $"{text}:{spec.Weight}");
        }

        if (payload is not null && !sawEcho)
        {
            throw new UsageException("--payload-size sets the text of ECHO, and --command has no ECHO");
        }

        Workload workload = options.Redis
            ? new(true, commands, Interleave(options.Commands), "QUIT\r\n"u8.ToArray(), ExpectedReply.Bytes("+OK\r\n"u8), string.Join(',', described))
            : new(false, commands, Interleave(options.Commands), RequestBytes(Wire.QuitWord), ExpectedReply.Bytes(Wire.Bye[..^1]), string.Join(',', described));
        if (options.Pipeline > 1 && (long)options.Pipeline * workload.LongestRequest > LoadOptions.MaxInFlightBytes)
        {
            throw new UsageException(
                $"--pipeline {options.Pipeline} of {workload.LongestRequest}-byte requests is more than {LoadOptions.MaxInFlightBytes} bytes in flight a connection");
        }

        return workload;
    }

    private static (byte[], ExpectedReply) TinyServerCommand(byte[] line)
    {
        ExpectedReply reply = Commands.Parse(line, out ReadOnlySpan<byte> text) switch
        {
            Command.Echo => ExpectedReply.Bytes([.. Wire.EchoPrefix, .. text]),
            Command.Time => ExpectedReply.Of(ReplyShape.Time),
            Command.Help => ExpectedReply.Bytes(Wire.Help[..^1]),
            Command.Quit => throw new UsageException("--command: QUIT ends the session; use --requests-per-session"),
            Command.BadArguments => ExpectedReply.Bytes(ErrorCodes.ReplyLine(ErrorCode.BadArguments)[..^1]),
            _ => ExpectedReply.Bytes(ErrorCodes.ReplyLine(ErrorCode.UnknownCommand)[..^1]),
        };
        return (RequestBytes(line), reply);
    }

    private static byte[] RequestBytes(ReadOnlySpan<byte> line)
    {
        var writer = new ArrayBufferWriter<byte>();
        RequestWriter.Write(writer, line);
        return writer.WrittenSpan.ToArray();
    }

    // Redis inline commands split at spaces and honour quotes, so an argument here is one plain word.
    private static (byte[], ExpectedReply) RedisCommand(byte[] line)
    {
        int space = line.AsSpan().IndexOf(Wire.Space);
        ReadOnlySpan<byte> argument = space < 0 ? default : line.AsSpan(space + 1);
        bool plainWord = argument.Length > 0 && !argument.ContainsAnyInRange((byte)0, (byte)' ') && !argument.ContainsAny("\"'\x7f"u8);
        ExpectedReply reply = true switch
        {
            _ when WordIs(line, "ECHO"u8) && plainWord => ExpectedReply.Bytes(Bulk(argument)),
            _ when WordIs(line, "PING"u8) && space < 0 => ExpectedReply.Bytes("+PONG\r\n"u8),
            _ when WordIs(line, "PING"u8) && plainWord => ExpectedReply.Bytes(Bulk(argument)),
            _ when WordIs(line, "TIME"u8) && space < 0 => ExpectedReply.Of(ReplyShape.RedisTime),
            _ => throw new UsageException("--redis sends ECHO WORD, PING, PING WORD or TIME (one plain word: no spaces or quotes)"),
        };
        return ([.. line, (byte)'\r', (byte)'\n'], reply);
    }

    private static byte[] Bulk(ReadOnlySpan<byte> text) =>
        [.. Encoding.ASCII.GetBytes($"${text.Length}\r\n"), .. text, (byte)'\r', (byte)'\n'];

    private static bool WordIs(ReadOnlySpan<byte> line, ReadOnlySpan<byte> word)
    {
        int space = line.IndexOf(Wire.Space);
        return Ascii.EqualsIgnoreCase(space < 0 ? line : line[..space], word);
    }

    /// <summary>A deterministic payload of letters and digits.</summary>
    private static byte[] Payload(int size)
    {
        ReadOnlySpan<byte> alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"u8;
        var payload = new byte[size];
        for (int i = 0; i < size; i++)
        {
            payload[i] = alphabet[i % alphabet.Length];
        }

        return payload;
    }

    /// <summary>Smooth weighted round robin (as nginx balances upstreams): weights 3 and 1 give 0, 0, 1, 0.</summary>
    private static int[] Interleave(IReadOnlyList<CommandSpec> commands)
    {
        int total = commands.Sum(c => c.Weight);
        var current = new int[commands.Count];
        var schedule = new int[total];
        for (int slot = 0; slot < total; slot++)
        {
            int best = 0;
            for (int i = 0; i < commands.Count; i++)
            {
                current[i] += commands[i].Weight;
                if (current[i] > current[best])
                {
                    best = i;
                }
            }

            current[best] -= total;
            schedule[slot] = best;
        }

        return schedule;
    }
}
