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
    private static readonly string[] DemoFirst = ["TIME"];
    private static readonly string[] DemoSecond = ["ECHO Hello from client"];

    /// <summary>One connection: each command, each after the previous one's reply, then QUIT unless a command was QUIT.</summary>
    public async Task<ExitCode> RunAsync(IReadOnlyList<string> commands)
    {
        await using Conversation conversation = await ConnectAsync(interactive: false);
        return await conversation.RunAsync(commands);
    }

    /// <summary>The demo: TIME then QUIT, then ECHO then QUIT, on two connections.</summary>
    public async Task<ExitCode> DemoAsync() => await DemoSecondAsync(await RunAsync(DemoFirst));

    /// <summary>
    /// Connects, then sends each line of standard input as soon as it is read (blank lines skipped), without waiting
    /// for earlier replies, and prints each reply as it comes. A QUIT line or the end of input (then QUIT is sent)
    /// ends it once every reply has come. Input that ends without a command runs the demo instead.
    /// </summary>
    public async Task<ExitCode> StreamAsync()
    {
        ExitCode first;
        await using (Conversation conversation = await ConnectAsync(interactive: false))
        {
            Task<string?>? input = ReadLineAsync();
            while (await conversation.WaitAsync(input))
            {
                string? line = (await input!)?.TrimEnd('\r');
                input = null;
                if (line is null)
                {
                    if (conversation.Sent == 0)
                    {
                        break;
                    }

                    await conversation.SendAsync("QUIT");
                }
                else if (string.IsNullOrWhiteSpace(line))
                {
                    input = ReadLineAsync();
                }
                else
                {
                    await conversation.SendAsync(line);
                    input = Commands.IsQuit(line) ? null : ReadLineAsync();
                }
            }

            if (conversation.Sent > 0)
            {
                return conversation.Result;
            }

            // The input was empty: this connection is the demo's first.
            first = await conversation.RunAsync(DemoFirst);
        }

        return await DemoSecondAsync(first);
    }

    /// <summary>
    /// A prompt: a command per line, its reply printed; QUIT or end of input (Ctrl-D) ends it. While it waits for
    /// the next line, what the server sends unasked is printed, and its close ends the session.
    /// </summary>
    public async Task<ExitCode> InteractiveAsync()
    {
        await using Conversation conversation = await ConnectAsync(interactive: true);
        while (true)
        {
            Console.Out.Write("> ");
            Task<string?> input = ReadLineAsync();
            await conversation.WaitAsync(input);
            string command = (await input)?.TrimEnd('\r') ?? "QUIT";
            if (string.IsNullOrWhiteSpace(command))
            {
                continue;
            }

            await conversation.SendAsync(command);
            await conversation.WaitAsync(input: null);
            if (Commands.IsQuit(command))
            {
                return conversation.Result;
            }
        }
    }

    private async Task<ExitCode> DemoSecondAsync(ExitCode first)
    {
        ExitCode second = await RunAsync(DemoSecond);
        return first != ExitCode.Success ? first : second;
    }

    /// <summary>
    /// The next line of standard input (null at its end), read on a thread of its own: the read cannot be cancelled,
    /// so while it waits the conversation goes on, and if the session ends first the read is left behind.
    /// </summary>
    private static Task<string?> ReadLineAsync() => Task.Run(() =>
    {
        try
        {
            return Console.In.ReadLine();
        }
        catch (IOException)
        {
            return null; // The terminal hung up: the end of input, as Ctrl-D.
        }
    });

    private async Task<Conversation> ConnectAsync(bool interactive)
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
        return new Conversation(client, timeout, interactive);
    }
}

/// <summary>The connection could not be established (refused, unreachable, unknown host).</summary>
internal sealed class CannotConnectException(string message, Exception inner) : Exception(message, inner);
