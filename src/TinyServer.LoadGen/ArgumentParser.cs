using System.CommandLine;
using System.Globalization;
using System.Text;

namespace TinyServer.LoadGen;

/// <summary>Reads the command line (<see cref="LoadCommand"/>) into <see cref="LoadOptions"/>. Any mistake is a <see cref="UsageException"/>.</summary>
internal static class ArgumentParser
{
    public const int MaxCommands = 64;
    public const int MaxWeight = 1000;

    /// <summary>The options, or null when the command line asks for help, the version or completions.</summary>
    public static LoadOptions? Parse(IReadOnlyList<string> args) => Parse(args, out _);

    /// <summary>
    /// The options, or null when the command line asks for something else: <paramref name="parsed"/>'s
    /// <see cref="ParseResult.Invoke"/> then writes the help, the version or the completions.
    /// </summary>
    public static LoadOptions? Parse(IReadOnlyList<string> args, out ParseResult parsed)
    {
        var command = new LoadCommand();
        parsed = command.Root.Parse(args);
        return command.Read(parsed);
    }

    /// <summary>
    /// Parses <c>LINE[:WEIGHT][,LINE[:WEIGHT]...]</c>. <c>\,</c> is a comma inside a line and <c>\\</c> a backslash;
    /// a line that itself ends in <c>:digits</c> needs an explicit weight (<c>ECHO 12:30:1</c>).
    /// </summary>
    public static IReadOnlyList<CommandSpec> ParseCommands(string value)
    {
        var commands = new List<CommandSpec>();
        var line = new StringBuilder();
        for (int i = 0; i <= value.Length; i++)
        {
            if (i < value.Length && value[i] == '\\' && i + 1 < value.Length && value[i + 1] is ',' or '\\')
            {
                line.Append(value[++i]);
            }
            else if (i < value.Length && value[i] != ',')
            {
                line.Append(value[i]);
            }
            else
            {
                commands.Add(Weighted(line.ToString()));
                line.Clear();
            }
        }

        if (commands.Count > MaxCommands)
        {
            throw new UsageException($"--command: at most {MaxCommands} commands in a mix");
        }

        return commands;
    }

    private static CommandSpec Weighted(string entry)
    {
        int colon = entry.LastIndexOf(':');
        string digits = colon >= 0 ? entry[(colon + 1)..] : "";
        CommandSpec spec = digits.Length > 0 && digits.All(char.IsAsciiDigit)
            ? new CommandSpec(entry[..colon], (int)Integer("--command weight", digits, 1, MaxWeight))
            : new CommandSpec(entry, 1);
        if (spec.Line.Length == 0)
        {
            throw new UsageException("--command: an empty request line (commands are separated by commas)");
        }

        if (spec.Line.AsSpan().ContainsAny('\r', '\n'))
        {
            throw new UsageException("--command: a request line cannot contain CR or LF");
        }

        return spec;
    }

    private static long Integer(string name, string value, long min, long max) =>
        long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out long n) && n >= min && n <= max
            ? n
            : throw new UsageException($"{name}: '{value}' is not a whole number from {min} to {max}");
}
