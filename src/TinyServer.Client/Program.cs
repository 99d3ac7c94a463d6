using System.Globalization;
using TinyServer.Client;
using TinyServer.ClientLibrary;
using TinyServer.Protocol;

const string Usage = """
    Usage: TinyServer.Client [--timeout SECONDS] [--tls [--insecure]] [--interactive | --demo] HOST PORT [COMMAND ...]
           TinyServer.Client [--timeout SECONDS] --unix PATH [--interactive | --demo] [COMMAND ...]

      HOST PORT              the demo: TIME then QUIT, then ECHO Hello from client then QUIT, on two connections
                             (when standard input is redirected, its lines are the commands instead: each is sent
                             as soon as it is read, each reply printed as it comes; QUIT or end of input ends)
      HOST PORT COMMAND ...  sends each COMMAND (quote it: "ECHO hi there"), then QUIT
      --interactive          a prompt: type a command, see its reply; QUIT or Ctrl-D ends
      --demo                 the demo, whatever standard input is
      --timeout SECONDS      limit for connecting and for each reply (default 10); input may take its time
      --tls                  connect with TLS (the server's --tls-port); its certificate must be valid for HOST
      --insecure             with --tls: accept any certificate (a self-signed test server); warns on stderr
      --unix PATH            connect to the server's Unix domain socket at PATH instead of HOST PORT

    A line the server sends unasked (ERROR SHUTTING_DOWN) is printed when it arrives; when the server closes the
    connection, the client exits 5 at once, even while it waits for input.

    Exit codes: 0 ok, 1 an ERROR reply, 2 bad usage, 3 cannot connect (including a failed TLS handshake or an
    untrusted certificate), 4 timeout, 5 server closed the connection, 6 not the TinyServer protocol (wrong banner,
    over-long reply).
    """;

TimeSpan timeout = TimeSpan.FromSeconds(10);
bool interactive = false, demo = false, tls = false, insecure = false;
string? unixPath = null;
var positional = new List<string>();
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--help" or "-h":
            Console.Out.WriteLine(Usage);
            return (int)ExitCode.Success;
        case "--interactive" or "-i":
            interactive = true;
            break;
        case "--demo":
            demo = true;
            break;
        case "--timeout" when i + 1 < args.Length
            && double.TryParse(args[i + 1], NumberStyles.Float, CultureInfo.InvariantCulture, out double seconds) && seconds is > 0 and <= 3600:
            timeout = TimeSpan.FromSeconds(seconds);
            i++;
            break;
        case "--timeout":
            return Fail(ExitCode.Usage, "--timeout needs a number of seconds (0-3600]");
        case "--tls":
            tls = true;
            break;
        case "--insecure":
            insecure = true;
            break;
        case "--unix" when i + 1 < args.Length && args[i + 1].Length > 0:
            unixPath = args[++i];
            break;
        case "--unix":
            return Fail(ExitCode.Usage, "--unix needs the path of the server's socket");
        case var option when option.StartsWith("--", StringComparison.Ordinal) && positional.Count < (unixPath is null ? 2 : 1):
            return Fail(ExitCode.Usage, $"unknown option '{option}'\n{Usage}");
        default:
            positional.Add(args[i]);
            break;
    }
}

if (insecure && !tls)
{
    return Fail(ExitCode.Usage, "--insecure goes with --tls");
}

if (unixPath is not null && tls)
{
    return Fail(ExitCode.Usage, "--unix and --tls do not go together: the server's Unix socket is plain text");
}

Target target;
List<string> commands;
if (unixPath is not null)
{
    target = new Target("", 0, unixPath, Tls: false, Insecure: false);
    commands = positional;
}
else if (positional.Count < 2 || !int.TryParse(positional[1], NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port is < 1 or > 65535)
{
    return Fail(ExitCode.Usage, positional.Count < 2 ? Usage : $"'{positional[1]}' is not a port (1-65535)\n{Usage}");
}
else
{
    target = new Target(positional[0], port, null, tls, insecure);
    commands = positional.Skip(2).ToList();
}

if (commands.FirstOrDefault(c => c.Contains('\n', StringComparison.Ordinal)) is not null)
{
    return Fail(ExitCode.Usage, "a command cannot contain a line break: pass each command as its own argument");
}

if (interactive && (demo || commands.Count > 0))
{
    return Fail(ExitCode.Usage, "--interactive takes no commands and no --demo");
}

if (insecure)
{
    Console.Error.WriteLine("tinyserver-client: warning: --insecure: the server's certificate is not checked; anyone in the path can read and change this session");
}

var session = new Session(target, timeout);
try
{
    if (interactive)
    {
        return (int)await session.InteractiveAsync();
    }

    if (commands.Count > 0)
    {
        return (int)await session.RunAsync(commands);
    }

    return (int)await (!demo && Console.IsInputRedirected ? session.StreamAsync() : session.DemoAsync());
}
catch (Exception e) when (e is OperationCanceledException or TimeoutException)
{
    return Fail(ExitCode.Timeout, $"timed out after {timeout.TotalSeconds:0.###} s waiting for {target.Display}");
}
catch (CannotConnectException e)
{
    return Fail(ExitCode.CannotConnect, e.Message);
}
catch (TlsHandshakeException e)
{
    return Fail(ExitCode.CannotConnect, $"cannot connect to {target.Display}: {e.Message}{(insecure ? "" : " (--insecure accepts any certificate, for testing)")}");
}
catch (ProtocolException e)
{
    return Fail(ExitCode.ProtocolError, e.Message);
}
catch (IOException e)
{
    return Fail(ExitCode.ServerClosed, e is ServerClosedException ? e.Message : $"connection lost: {e.Message}");
}

static int Fail(ExitCode code, string message)
{
    Console.Error.WriteLine($"tinyserver-client: {message}");
    return (int)code;
}
