using System.Net.Sockets;
using TinyServer.ClientLibrary;
using TinyServer.Protocol;

namespace TinyServer.Client;

/// <summary>Where the server is: HOST PORT (over TLS or not), or a Unix socket PATH.</summary>
internal sealed record Target(string Host, int Port, string? UnixPath, bool Tls, bool Insecure)
{
    public string Display => UnixPath is not null
        ? $"unix:{UnixPath}"
        : (Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]:{Port}" : $"{Host}:{Port}") + (Tls ? " (TLS)" : "");

    public Task<TinyServerClient> ConnectAsync(CancellationToken cancellationToken) => UnixPath is not null
        ? TinyServerClient.ConnectUnixAsync(UnixPath, cancellationToken)
        : TinyServerClient.ConnectAsync(Host, Port, Tls ? new TlsClientOptions { AcceptAnyCertificate = Insecure } : null, cancellationToken);
}

/// <summary>Runs commands against one server and prints the transcript: <c>-&gt; sent</c>, <c>&lt;- received</c>.</summary>
internal sealed class Session(Target target, TimeSpan timeout)
{
    /// <summary>One connection: each command, then QUIT unless a command was QUIT.</summary>
    public async Task<ExitCode> RunAsync(IReadOnlyList<string> commands)
    {
        await using TinyServerClient client = await ConnectAsync();
        ExitCode result = ExitCode.Success;
        foreach (string command in commands.Any(Replies.IsQuit) ? commands : [.. commands, "QUIT"])
        {
            string reply = await RequestAsync(client, command);
            if (Replies.IsError(reply))
            {
                result = ExitCode.ErrorReply;
                Console.Error.WriteLine($"tinyserver-client: '{command}' got an error reply: {reply}");
            }

            if (Replies.IsQuit(command))
            {
                break;
            }
        }

        return result;
    }

    /// <summary>A prompt: a command per line, its reply printed; QUIT or end of input (Ctrl-D) ends it.</summary>
    public async Task<ExitCode> InteractiveAsync()
    {
        await using TinyServerClient client = await ConnectAsync();
        ExitCode result = ExitCode.Success;
        while (true)
        {
            Console.Out.Write("> ");
            string command = Console.In.ReadLine()?.TrimEnd('\r') ?? "QUIT";
            if (string.IsNullOrWhiteSpace(command))
            {
                continue;
            }

            string reply = await RequestAsync(client, command, echoCommand: false);
            if (Replies.IsError(reply))
            {
                result = ExitCode.ErrorReply;
            }

            if (Replies.IsQuit(command))
            {
                return result;
            }
        }
    }

    private async Task<TinyServerClient> ConnectAsync()
    {
        Console.Out.WriteLine($"CONNECT to {target.Display}");
        using var deadline = new CancellationTokenSource(timeout);
        TinyServerClient client;
        try
        {
            client = await target.ConnectAsync(deadline.Token);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
            // Accepted, then dropped at once: the connection was made, the server closed it.
            throw new ServerClosedException($"the server reset the connection before its banner: {e.Message}");
        }
        catch (SocketException e)
        {
            throw new CannotConnectException($"cannot connect to {target.Display}: {e.Message}", e);
        }

        Console.Out.WriteLine($"<- {client.Banner}");
        return client;
    }

    private async Task<string> RequestAsync(TinyServerClient client, string command, bool echoCommand = true)
    {
        if (echoCommand)
        {
            Console.Out.WriteLine($"-> {command}");
        }

        using var deadline = new CancellationTokenSource(timeout);
        string reply = await client.RequestAsync(command, deadline.Token);
        Console.Out.WriteLine($"<- {reply}");
        return reply;
    }
}

/// <summary>The connection could not be established (refused, unreachable, unknown host).</summary>
internal sealed class CannotConnectException(string message, Exception inner) : Exception(message, inner);
