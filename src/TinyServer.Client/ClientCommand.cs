using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Net;
using System.Text;
using TinyServer.Protocol;

namespace TinyServer.Client;

/// <summary>What a command line asks the client to do.</summary>
internal sealed record ClientRun(Target Target, IReadOnlyList<string> Commands, TimeSpan Timeout, bool Interactive, bool Demo);

/// <summary>A mistake on the command line: exit code 2 (<see cref="ExitCode.Usage"/>).</summary>
internal sealed class UsageException(string message) : Exception(message);

/// <summary>
/// The client's command line as a System.CommandLine root command: each option and argument with its range, default
/// and help text, plus generated help, <c>--version</c>, response files (<c>@FILE</c>) and completions (the
/// <c>[suggest]</c> directive).
/// </summary>
internal sealed class ClientCommand
{
    public const string Name = "TinyServer.Client";

    /// <summary>The two ways to name the server, for a usage error.</summary>
    public const string Synopsis = $"""
        Usage: {Name} [options] HOST PORT [COMMAND ...]
               {Name} [options] --unix PATH [COMMAND ...]
        """;

    private const string Description = """
        The TinyServer command-line client: connects to HOST PORT (or to --unix PATH), prints the banner, sends the
        commands and prints each reply (-> sent, <- received).
        """;

    /// <summary>Written after the generated help.</summary>
    private const string Notes = """
        A line the server sends unasked (ERROR SHUTTING_DOWN) is printed when it arrives; when the server closes the
        connection, the client exits 5 at once, even while it waits for input.

        Arguments can come from a file: @FILE stands for the arguments in it, separated by spaces or lines (quote a
        command with spaces: "ECHO hi there"; a line starting with # is a comment). Shell completion: dotnet-suggest
        (the [suggest] directive).

        Exit codes: 0 ok, 1 an ERROR reply, 2 bad usage, 3 cannot connect (including a failed TLS handshake or an
        untrusted certificate), 4 timeout, 5 server closed the connection, 6 not the TinyServer protocol (wrong banner,
        over-long reply).
        """;

    private const double DefaultTimeoutSeconds = 10;
    private const double MaxTimeoutSeconds = 3600;
    private const int MinPort = 1;
    private const string UnixNeeds = "--unix needs the path of the server's socket";
    private static readonly string PortRange = $"{MinPort}-{IPEndPoint.MaxPort}";
    private static readonly string TimeoutRange = $"more than 0 and at most {MaxTimeoutSeconds}";
    private static readonly string[] CommandWords = [.. ((byte[][])[[.. Wire.TimeWord], [.. Wire.EchoWord], [.. Wire.HelpWord], [.. Wire.QuitWord]]).Select(Encoding.ASCII.GetString)];
    private static readonly string TimeoutNeeds = $"--timeout needs a number of seconds, {TimeoutRange}";

    private readonly Argument<string> _host = new("HOST")
    {
        Description = "the server's name or address",
        Arity = ArgumentArity.ZeroOrOne,
    };

    private readonly Argument<string> _port = new("PORT")
    {
        Description = $"the server's port ({PortRange})",
        Arity = ArgumentArity.ZeroOrOne,
    };

    private readonly Argument<string[]> _commands = new("COMMAND")
    {
        HelpName = "COMMAND",
        Description = "sends each COMMAND (quote it: \"ECHO hi there\"), then QUIT. Without any: when standard input is "
            + "redirected, its lines are the commands (each sent as soon as it is read, each reply printed as it comes; "
            + "QUIT or end of input ends), else the demo: TIME then QUIT, then ECHO Hello from client then QUIT, on two "
            + "connections",
        Arity = ArgumentArity.ZeroOrMore,
    };

    private readonly Option<bool> _interactive = new("--interactive", "-i") { Description = "a prompt: type a command, see its reply; QUIT or Ctrl-D ends" };
    private readonly Option<bool> _demo = new("--demo") { Description = "the demo, whatever standard input is" };

    private readonly Option<double> _timeout = Valued<double>(
        "--timeout",
        "SECONDS",
        $"limit for connecting and for each reply, {TimeoutRange}; input may take its time",
        (string text, out double seconds) =>
            double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out seconds) && seconds is > 0 and <= MaxTimeoutSeconds,
        TimeoutNeeds);

    private readonly Option<bool> _tls = new("--tls") { Description = "connect with TLS (the server's --tls-port); its certificate must be valid for HOST" };
    private readonly Option<bool> _insecure = new("--insecure") { Description = "with --tls: accept any certificate (a self-signed test server); warns on stderr" };

    private readonly Option<string> _unix = Valued<string>(
        "--unix",
        "PATH",
        "connect to the server's Unix domain socket at PATH instead of HOST PORT",
        (string text, out string path) => (path = text).Length > 0,
        UnixNeeds);

    public ClientCommand()
    {
        Root = new RootCommand(Description) { HelpName = Name };
        HelpOption help = Root.Options.OfType<HelpOption>().Single();
        help.Action = new HelpWithNotes((SynchronousCommandLineAction)help.Action!);
        _timeout.DefaultValueFactory = _ => DefaultTimeoutSeconds;
        Root.Arguments.Add(_host);
        Root.Arguments.Add(_port);
        Root.Arguments.Add(_commands);
        foreach (Option option in (Option[])[_interactive, _demo, _timeout, _tls, _insecure, _unix])
        {
            Root.Options.Add(option);
        }

        // The protocol's words, where a command goes: after HOST PORT, or anywhere with --unix.
        _commands.CompletionSources.Add(context =>
            context.ParseResult.GetValue(_port) is not null || context.ParseResult.GetValue(_unix) is not null ? CommandWords : []);
    }

    private delegate bool TryRead<T>(string text, out T value);

    public RootCommand Root { get; }

    /// <summary>
    /// What <paramref name="parsed"/> asks the client to do, or null when it asks for the help, the version or
    /// completions (<see cref="ParseResult.Invoke"/> writes them).
    /// </summary>
    /// <exception cref="UsageException">The command line is wrong.</exception>
    public ClientRun? Read(ParseResult parsed)
    {
        if (parsed.Action is not null and not ParseErrorAction)
        {
            return null;
        }

        // Every occurrence of an option needs its own value (System.CommandLine pools the values of a repeated one).
        IReadOnlyList<Token> tokens = parsed.Tokens;
        for (int i = 0; i < tokens.Count; i++)
        {
            if (tokens[i].Type == TokenType.Option && (i + 1 == tokens.Count || tokens[i + 1].Type != TokenType.Argument))
            {
                if (tokens[i].Value == _timeout.Name)
                {
                    throw new UsageException(TimeoutNeeds);
                }

                if (tokens[i].Value == _unix.Name)
                {
                    throw new UsageException(UnixNeeds);
                }
            }
        }

        if (parsed.Errors.Count > 0)
        {
            throw new UsageException(parsed.Errors[0].Message);
        }

        string? unixPath = parsed.GetValue(_unix);
        bool tls = parsed.GetValue(_tls), insecure = parsed.GetValue(_insecure);
        string[] positional = [.. new[] { parsed.GetValue(_host), parsed.GetValue(_port) }.OfType<string>(), .. parsed.GetValue(_commands) ?? []];

        // An unknown option is taken as an argument: before the commands start, no argument looks like an option.
        int endpointArguments = unixPath is null ? 2 : 0;
        if (positional.Take(Math.Max(endpointArguments, 1)).FirstOrDefault(p => p.StartsWith('-')) is { } unknown)
        {
            throw new UsageException($"unknown option '{unknown}'");
        }

        if (insecure && !tls)
        {
            throw new UsageException("--insecure goes with --tls");
        }

        if (unixPath is not null && tls)
        {
            throw new UsageException("--unix and --tls do not go together: the server's Unix socket is plain text");
        }

        Target target;
        if (unixPath is not null)
        {
            target = new Target("", 0, unixPath, Tls: false, Insecure: false);
        }
        else if (positional.Length < 2)
        {
            throw new UsageException("give the server's HOST and PORT (or --unix PATH)");
        }
        else if (!int.TryParse(positional[1], NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port is < MinPort or > IPEndPoint.MaxPort)
        {
            throw new UsageException($"'{positional[1]}' is not a port ({PortRange})");
        }
        else
        {
            target = new Target(positional[0], port, null, tls, insecure);
        }

        string[] commands = positional[endpointArguments..];
        if (commands.Any(c => c.Contains('\n', StringComparison.Ordinal)))
        {
            throw new UsageException("a command cannot contain a line break: pass each command as its own argument");
        }

        bool interactive = parsed.GetValue(_interactive), demo = parsed.GetValue(_demo);
        if (interactive && (demo || commands.Length > 0))
        {
            throw new UsageException("--interactive takes no commands and no --demo");
        }

        return new ClientRun(target, commands, TimeSpan.FromSeconds(parsed.GetValue(_timeout)), interactive, demo);
    }

    /// <summary>
    /// An option with one value (given twice, it is an error). A value <paramref name="read"/> refuses is an error that
    /// says what the option needs.
    /// </summary>
    private static Option<T> Valued<T>(string name, string placeholder, string text, TryRead<T> read, string needs) => new(name)
    {
        Description = text,
        HelpName = placeholder,
        Arity = ArgumentArity.ExactlyOne,
        CustomParser = result =>
        {
            string value = result.Tokens[0].Value;
            if (read(value, out T parsed))
            {
                return parsed;
            }

            result.AddError($"{needs} (not '{value}')");
            return default!;
        },
    };

    /// <summary>The generated help, then <see cref="Notes"/>.</summary>
    private sealed class HelpWithNotes(SynchronousCommandLineAction help) : SynchronousCommandLineAction
    {
        public override bool ClearsParseErrors => true;

        public override int Invoke(ParseResult parseResult)
        {
            int exitCode = help.Invoke(parseResult);
            parseResult.InvocationConfiguration.Output.WriteLine(Notes);
            return exitCode;
        }
    }
}
