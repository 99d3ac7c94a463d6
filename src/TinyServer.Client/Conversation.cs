using System.Runtime.ExceptionServices;
using System.Threading.Channels;
using TinyServer.ClientLibrary;
using TinyServer.Protocol;

namespace TinyServer.Client;

/// <summary>
/// One connection's transcript. A read is always waiting on the server, so every line it sends is printed as it
/// arrives, a notice it sends unasked (<c>ERROR SHUTTING_DOWN</c>) included, and its close is seen even while the
/// caller waits for input. Commands may be sent before earlier ones are answered; the transcript still shows each
/// command (<c>-&gt; </c>) just before its reply (<c>&lt;- </c>). Used from one thread of control at a time.
/// </summary>
internal sealed class Conversation : IAsyncDisposable
{
    private readonly TinyServerClient _client;
    private readonly TimeSpan _timeout;
    private readonly bool _interactive;
    private readonly Channel<Received> _received = Channel.CreateUnbounded<Received>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly CancellationTokenSource _stopReading = new();
    private readonly Task _reading;

    /// <summary>Commands sent and not answered yet, oldest first; the oldest one's line is printed.</summary>
    private readonly Queue<string> _unanswered = new();

    private Task<bool>? _receivedReady;
    private long _replyDue;
    private Exception? _sendFailure;

    /// <param name="interactive">A prompt session: no <c>-&gt; </c> lines, and error replies are not repeated on stderr.</param>
    public Conversation(TinyServerClient client, TimeSpan timeout, bool interactive)
    {
        _client = client;
        _timeout = timeout;
        _interactive = interactive;
        _reading = ReadAsync(_stopReading.Token);
    }

    /// <summary><see cref="ExitCode.ErrorReply"/> once a command got an error reply, else <see cref="ExitCode.Success"/>.</summary>
    public ExitCode Result { get; private set; } = ExitCode.Success;

    /// <summary>How many commands were sent.</summary>
    public int Sent { get; private set; }

    /// <summary>Each command in turn, each after the previous one's reply, then QUIT unless a command was QUIT.</summary>
    public async Task<ExitCode> RunAsync(IReadOnlyList<string> commands)
    {
        foreach (string command in commands.Any(Commands.IsQuit) ? commands : [.. commands, "QUIT"])
        {
            await SendAsync(command);
            await WaitAsync(input: null);
            if (Commands.IsQuit(command))
            {
                break;
            }
        }

        return Result;
    }

    /// <summary>Sends <paramref name="command"/> without waiting for its reply (<see cref="WaitAsync"/> prints it).</summary>
    public async Task SendAsync(string command)
    {
        _unanswered.Enqueue(command);
        Sent++;
        if (_unanswered.Count == 1)
        {
            AwaitReplyTo(command);
        }

        if (_sendFailure is not null)
        {
            return;
        }

        using var deadline = new CancellationTokenSource(_timeout);
        try
        {
            await _client.SendAsync(command, deadline.Token);
        }
        catch (IOException e)
        {
            // Broken pipe or reset: the server has gone. The reading side tells how (a notice, the close), so say
            // that rather than this; WaitAsync falls back to this if the reading side has nothing to tell.
            _sendFailure = e;
        }
    }

    /// <summary>
    /// Prints what the server sends until <paramref name="input"/> completes (returns true; the caller takes it) or
    /// nothing is left to wait for: no input and every command answered (returns false).
    /// </summary>
    /// <exception cref="ServerClosedException">The server closed the connection.</exception>
    /// <exception cref="TimeoutException">A reply did not come within the timeout.</exception>
    public async Task<bool> WaitAsync(Task? input)
    {
        while (true)
        {
            while (!IsDone(input) && _received.Reader.TryRead(out Received received))
            {
                Print(received);
            }

            if (IsDone(input))
            {
                return false;
            }

            // Once a send has failed, only the reading side's account of the end is awaited.
            Task? awaitedInput = _sendFailure is null ? input : null;
            if (awaitedInput is { IsCompleted: true })
            {
                return true;
            }

            _receivedReady ??= _received.Reader.WaitToReadAsync().AsTask();
            TimeSpan left = _unanswered.Count == 0
                ? Timeout.InfiniteTimeSpan
                : TimeSpan.FromMilliseconds(Math.Max(0, _replyDue - Environment.TickCount64));
            try
            {
                Task next = awaitedInput is null ? _receivedReady : Task.WhenAny(_receivedReady, awaitedInput);
                await next.WaitAsync(left);
            }
            catch (TimeoutException) when (_sendFailure is not null)
            {
                ExceptionDispatchInfo.Throw(_sendFailure);
            }

            if (_receivedReady.IsCompleted)
            {
                _receivedReady = null;
            }
        }
    }

    private bool IsDone(Task? input) => input is null && _unanswered.Count == 0;

    private void Print(Received received)
    {
        if (received.Failure is not null)
        {
            ExceptionDispatchInfo.Throw(received.Failure);
        }

        if (received.Line is not { } line)
        {
            throw new ServerClosedException(_unanswered.TryPeek(out string? oldest)
                ? $"the server closed the connection before replying to '{oldest}'"
                : "the server closed the connection");
        }

        Console.Out.WriteLine($"<- {line}");
        if (_unanswered.Count == 0 || ReplyReader.IsClosingNotice(line))
        {
            return; // Sent unasked: it answers no command.
        }

        string command = _unanswered.Dequeue();
        if (ReplyReader.IsError(line))
        {
            Result = ExitCode.ErrorReply;
            if (!_interactive)
            {
                Console.Error.WriteLine($"tinyserver-client: '{command}' got an error reply: {line}");
            }
        }

        if (_unanswered.TryPeek(out string? next))
        {
            AwaitReplyTo(next);
        }
    }

    /// <summary><paramref name="command"/> is now the oldest unanswered one: print it, and start its reply's clock.</summary>
    private void AwaitReplyTo(string command)
    {
        if (!_interactive)
        {
            Console.Out.WriteLine($"-> {command}");
        }

        _replyDue = Environment.TickCount64 + (long)_timeout.TotalMilliseconds;
    }

    /// <summary>Reads every line the server sends, then its close or the failure, into <see cref="_received"/>.</summary>
    private async Task ReadAsync(CancellationToken stop)
    {
        try
        {
            string? line;
            do
            {
                line = await _client.ReadReplyAsync(stop);
                _received.Writer.TryWrite(new Received(line, null));
            }
            while (line is not null);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // The conversation is over.
        }
        catch (Exception e)
        {
            _received.Writer.TryWrite(new Received(null, e)); // A reset, a line over the limit, ...: WaitAsync throws it.
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopReading.CancelAsync();
        await _reading;
        _stopReading.Dispose();
        await _client.DisposeAsync();
    }

    /// <summary>A line, the close (both null), or what went wrong.</summary>
    private readonly record struct Received(string? Line, Exception? Failure);
}
