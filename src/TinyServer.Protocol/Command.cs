using System.Buffers.Binary;
using System.Text;

namespace TinyServer.Protocol;

/// <summary>What a request line asks for, decided by <see cref="Commands.Parse"/>.</summary>
public enum Command
{
    /// <summary>The command word is not a command; reply <c>ERROR UNKNOWN_COMMAND</c>.</summary>
    Unknown,

    /// <summary>A command with arguments it does not take, or ECHO without text; reply <c>ERROR BAD_ARGUMENTS</c>.</summary>
    BadArguments,

    Time,
    Echo,
    Help,
    Quit,
}

public static class Commands
{
    // The four command words, lower case, as little-endian 32-bit integers.
    private static readonly uint TimeKey = BinaryPrimitives.ReadUInt32LittleEndian("time"u8);
    private static readonly uint EchoKey = BinaryPrimitives.ReadUInt32LittleEndian("echo"u8);
    private static readonly uint HelpKey = BinaryPrimitives.ReadUInt32LittleEndian("help"u8);
    private static readonly uint QuitKey = BinaryPrimitives.ReadUInt32LittleEndian("quit"u8);

    /// <summary>
    /// Parses a request line (line ending removed). The command word is everything before the first space,
    /// matched ASCII-case-insensitively. For ECHO, <paramref name="text"/> is every byte after the first space.
    /// A command that takes no arguments accepts trailing spaces; ECHO needs text that is not only spaces.
    /// </summary>
    public static Command Parse(ReadOnlySpan<byte> line, out ReadOnlySpan<byte> text)
    {
        text = default;
        if (line.Length < 4 || (line.Length > 4 && line[4] != Wire.Space))
        {
            return Command.Unknown; // Every command word is four letters long.
        }

        // OR-ing 0x20 lower-cases ASCII letters; as every key byte is a letter, only its two cases map onto it.
        uint word = BinaryPrimitives.ReadUInt32LittleEndian(line) | 0x20202020u;
        ReadOnlySpan<byte> arguments = line.Length > 4 ? line[5..] : default;
        bool onlySpaces = !arguments.ContainsAnyExcept(Wire.Space);
        if (word == EchoKey)
        {
            if (onlySpaces)
            {
                return Command.BadArguments;
            }

            text = arguments;
            return Command.Echo;
        }

        Command command = word == TimeKey ? Command.Time
            : word == HelpKey ? Command.Help
            : word == QuitKey ? Command.Quit
            : Command.Unknown;
        return command == Command.Unknown || onlySpaces ? command : Command.BadArguments;
    }

    /// <summary>True when <paramref name="command"/>, a request line a client is about to send, is QUIT, which ends the session.</summary>
    public static bool IsQuit(string command) => Parse(Encoding.UTF8.GetBytes(command), out _) == Command.Quit;
}
