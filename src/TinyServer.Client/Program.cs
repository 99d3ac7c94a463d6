using System.CommandLine;
using TinyServer.Client;
using TinyServer.ClientLibrary;

var command = new ClientCommand();
ParseResult parsed = command.Root.Parse(args);
ClientRun? run;
try
{
    run = command.Read(parsed);
}
catch (UsageException e)
{
    return Fail(ExitCode.Usage, $"{e.Message}\n{ClientCommand.Synopsis}");
}

if (run is null)
{
    // --help, --version or the [suggest] directive: System.CommandLine writes it.
    return parsed.Invoke();
}

Target target = run.Target;
if (target.Insecure)
{
    Console.Error.WriteLine("tinyserver-client: warning: --insecure: the server's certificate is not checked; anyone in the path can read and change this session");
}

var session = new Session(target, run.Timeout);
try
{
    if (run.Interactive)
    {
        return (int)await session.InteractiveAsync();
    }

    if (run.Commands.Count > 0)
    {
        return (int)await session.RunAsync(run.Commands);
    }

    return (int)await (!run.Demo && Console.IsInputRedirected ? session.StreamAsync() : session.DemoAsync());
}
catch (BannerTimeoutException e)
{
    // A TLS port waits for the client's handshake while the client waits for the banner.
    string hint = target is { Tls: false, UnixPath: null } ? " (is this a TLS port? try --tls)" : "";
    return Fail(ExitCode.Timeout, $"timed out after {run.Timeout.TotalSeconds:0.###} s waiting for {target.Display}: {e.Message}{hint}");
}
catch (Exception e) when (e is OperationCanceledException or TimeoutException)
{
    return Fail(ExitCode.Timeout, $"timed out after {run.Timeout.TotalSeconds:0.###} s waiting for {target.Display}");
}
catch (CannotConnectException e)
{
    return Fail(ExitCode.CannotConnect, e.Message);
}
catch (TlsHandshakeException e)
{
    return Fail(ExitCode.CannotConnect, $"cannot connect to {target.Display}: {e.Message}{(target.Insecure ? "" : " (--insecure accepts any certificate, for testing)")}");
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
