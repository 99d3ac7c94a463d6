using System.Net.Sockets;
using System.Runtime.ExceptionServices;
using TinyServer.Protocol;

namespace TinyServer.ClientLibrary;

/// <summary>
/// A session with a TinyServer that outlives its connections: it connects again when the server ends a connection,
/// and sends again what the server said it did not execute. The rules, the same as the load generator's:
/// <list type="bullet">
/// <item><c>BYE</c> (the reply to QUIT), the server's close between requests (an idle timeout, a restart), and a
/// closing notice that came unasked (<c>ERROR IDLE_TIMEOUT</c>, <c>ERROR SHUTTING_DOWN</c>): the next request goes on
/// a new connection. Nothing was in flight, so nothing is lost. (Lines pipelined after a QUIT are ignored by the
/// server, so they too go again on the new connection.)</item>
/// <item><c>ERROR SHUTTING_DOWN</c> (or <c>ERROR IDLE_TIMEOUT</c>) in place of a reply: the server answers every line
/// it has read before it (protocol.md, section 5), so that request and every one pipelined after it were not
/// executed. They are sent again, in order, on a new connection (<see cref="Resent"/>); the caller sees only their
/// replies.</item>
/// <item>A close or reset with requests in flight and no notice: they may have been executed, so they are never sent
/// again. <see cref="RequestLostException"/> says which; the next request connects again. Whether to retry is the
/// caller's decision: TIME, ECHO and HELP change nothing and may be retried; a command with an effect must not be
/// retried blindly.</item>
/// </list>
/// A request waits through the reconnect (bounded by <see cref="ReconnectOptions.ConnectTimeout"/> and the caller's
/// cancellation), with the backoff of <see cref="ReconnectOptions"/> between dials that fail or give connections that end
/// before they answer anything (a server that answers ERROR SHUTTING_DOWN to everything is not redialled in a tight
/// loop). Not safe for concurrent use: one request or pipeline at a time.
/// </summary>
public sealed class ReconnectingTinyServerClient : IAsyncDisposable
{
    private readonly Func<CancellationToken, Task<TinyServerClient>> _connect;
    private readonly ReconnectOptions _options;
    private readonly CancellationTokenSource _disposed = new();
    private TinyServerClient? _client;
    private CancellationTokenSource? _reading; // Cancels the reads of the current connection when it is dropped.

    // A read always waits beside the idle connection, so that a close or a notice sent unasked is seen before the
    // next request goes out (then nothing is in flight, and nothing is lost). Its result is the next request's reply.
    private Task<string?>? _next;

    // The reconnect under way: since when connections have ended with no request answered (the deadline counts from
    // it), the wait before the next dial (zero: at once) and the last failure. Reset when a request is answered.
    private DateTimeOffset? _endedAt;
    private TimeSpan _backoff;
    private ExceptionDispatchInfo? _failure;

    private ReconnectingTinyServerClient(TinyServerClient client, Func<CancellationToken, Task<TinyServerClient>> connect, ReconnectOptions options)
    {
        _connect = connect;
        _options = options;
        Adopt(client);
    }

    /// <summary>Connections opened to replace one that ended.</summary>
    public long Reconnects { get; private set; }

    /// <summary>Requests the server did not execute (a closing notice came in their place), sent again.</summary>
    public long Resent { get; private set; }

    /// <summary>
    /// False once the connection is known to have ended (a close, a reset or a closing notice seen while idle, or a
    /// loss): the next request then connects again. True does not promise that the server is still there.
    /// </summary>
    public bool IsConnected => _client is not null && _next is not { IsCompleted: true };

    /// <summary>
    /// Connects once with <paramref name="connect"/> (its failure is thrown: the first connection is not retried) and
    /// uses it again for every reconnect.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A value of <paramref name="options"/> is out of its range (nothing is dialled).</exception>
    public static async Task<ReconnectingTinyServerClient> ConnectAsync(Func<CancellationToken, Task<TinyServerClient>> connect, ReconnectOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connect);
        options ??= new ReconnectOptions();
        options.Validate();
        TinyServerClient client = await connect(cancellationToken).ConfigureAwait(false);
        return new ReconnectingTinyServerClient(client, connect, options);
    }

    /// <summary>Connects to <paramref name="host"/>:<paramref name="port"/> (over TLS when <paramref name="tls"/> is given).</summary>
    public static Task<ReconnectingTinyServerClient> ConnectAsync(string host, int port, TlsClientOptions? tls = null, ReconnectOptions? options = null, CancellationToken cancellationToken = default) =>
        ConnectAsync(token => TinyServerClient.ConnectAsync(host, port, tls, token), options, cancellationToken);

    /// <summary>Sends a command and returns its reply, on a new connection if need be (see the rules above).</summary>
    /// <exception cref="RequestLostException">The connection ended with the request in flight.</exception>
    /// <exception cref="TimeoutException">No new connection within <see cref="ReconnectOptions.ConnectTimeout"/>: the last dial was abandoned at it (see <see cref="PipelineAsync"/> for the others).</exception>
    public async Task<string> RequestAsync(string command, CancellationToken cancellationToken = default) =>
        (await PipelineAsync([command], cancellationToken).ConfigureAwait(false))[0];

    /// <summary>
    /// Sends the commands in one write and returns one reply per command. The commands a closing notice says were not
    /// executed are sent again on a new connection.
    /// </summary>
    /// <exception cref="RequestLostException">The connection ended with some of them in flight (the answered ones are in it).</exception>
    /// <exception cref="ServerClosedException">Every new connection was ended with a closing notice, unanswered, until <see cref="ReconnectOptions.ConnectTimeout"/> (or the last dial was closed before the banner).</exception>
    /// <exception cref="SocketException">No new connection could be made within <see cref="ReconnectOptions.ConnectTimeout"/> (the last failure; or another failure of the connect).</exception>
    /// <exception cref="TimeoutException">The last dial was still under way (connected without a banner, or the connect or TLS handshake not done) at the <see cref="ReconnectOptions.ConnectTimeout"/> deadline and was abandoned; or <see cref="ReconnectOptions.ConnectTimeout"/> is 0 and the connection had ended.</exception>
    public async Task<IReadOnlyList<string>> PipelineAsync(IReadOnlyList<string> commands, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(commands);
        ObjectDisposedException.ThrowIf(_disposed.IsCancellationRequested, this);
        var replies = new List<string>(commands.Count);
        Answered(); // A new request: a reconnect it needs starts afresh.
        int resend = 0; // Requests not executed (a notice, lines after QUIT): counted in Resent when sent again.
        while (replies.Count < commands.Count)
        {
            TinyServerClient client = await ReadyAsync(cancellationToken).ConfigureAwait(false);
            Resent += resend;
            resend = 0;
            string[] unanswered = [.. commands.Skip(replies.Count)];
            try
            {
                await client.SendAsync(unanswered, cancellationToken).ConfigureAwait(false);
                for (int i = 0; i < unanswered.Length; i++)
                {
                    string? reply = await NextReplyAsync(client, cancellationToken).ConfigureAwait(false);
                    if (reply is null)
                    {
                        await DropAsync().ConfigureAwait(false);
                        throw Lost(replies, commands, "the server closed the connection", null);
                    }

                    if (ReplyReader.IsClosingNotice(reply))
                    {
                        // Not executed: this one and those after it go again on a new connection, after the backoff
                        // when this connection answered none, unless ConnectTimeout runs out first (ReadyAsync).
                        await DropAsync().ConfigureAwait(false);
                        resend = unanswered.Length - i;
                        Ended(ExceptionDispatchInfo.Capture(new ServerClosedException(
                            $"the server answered '{reply}' on every connection within the connect timeout ({_options.ConnectTimeout.TotalSeconds} s); {resend} request(s) were not executed")));
                        break;
                    }

                    replies.Add(reply);
                    Answered();
                    if (ReplyReader.IsBye(reply))
                    {
                        // QUIT ended the session: the server ignores the lines after it, so they go on a new connection.
                        resend = unanswered.Length - i - 1;
                        Ended(null);
                        await DropAsync().ConfigureAwait(false);
                        break;
                    }
                }
            }
            catch (RequestLostException)
            {
                throw;
            }
            catch (Exception e) when (e is ProtocolException or OperationCanceledException)
            {
                await DropAsync().ConfigureAwait(false); // Requests may be in flight: the connection cannot be trusted.
                throw;
            }
            catch (Exception e) when (e is IOException or SocketException)
            {
                await DropAsync().ConfigureAwait(false);
                throw Lost(replies, commands, "the connection broke", e);
            }
        }

        if (_client is not null)
        {
            _next ??= _client.ReadReplyAsync(_reading!.Token);
        }

        return replies;
    }

    // The next line from the server: the read already waiting beside the connection, or a new one. It stays in _next
    // until it completes, so that a connection dropped meanwhile cancels and awaits it before it is disposed.
    private async Task<string?> NextReplyAsync(TinyServerClient client, CancellationToken cancellationToken)
    {
        _next ??= client.ReadReplyAsync(_reading!.Token);
        string? reply = await _next.WaitAsync(cancellationToken).ConfigureAwait(false);
        _next = null;
        return reply;
    }

    private static RequestLostException Lost(List<string> replies, IReadOnlyList<string> commands, string why, Exception? inner)
    {
        string[] unanswered = [.. commands.Skip(replies.Count)];
        return new RequestLostException(
            $"{why} with {unanswered.Length} request(s) in flight, which may have been executed and were not sent again", replies, unanswered, inner);
    }

    // A request was answered (or a new one begins): the next reconnect is made at once, with all of ConnectTimeout.
    private void Answered()
    {
        _endedAt = null;
        _backoff = TimeSpan.Zero;
        _failure = null;
    }

    // The connection ended: the reconnect's deadline counts from the first end since a request was answered.
    private void Ended(ExceptionDispatchInfo? failure)
    {
        _endedAt ??= _options.TimeProvider.GetUtcNow();
        _failure = failure ?? _failure;
    }

    // The connection to send on: the current one when it is still open and nothing came unasked, else a new one. The
    // first dial since a request was answered is made at once; every later one (after a failed dial, or a connection
    // ended before it answered anything) waits FirstBackoff, doubling up to MaxBackoff. No dial is made at or after the
    // deadline, and none outlives it: then the last failure is thrown, or a TimeoutException when there was none.
    private async Task<TinyServerClient> ReadyAsync(CancellationToken cancellationToken)
    {
        if (_client is not null && _next is { IsCompleted: true })
        {
            // Closed, broken, or a notice (or anything else) unasked while idle: nothing was in flight.
            await DropAsync().ConfigureAwait(false);
            Ended(null);
        }

        if (_client is not null)
        {
            return _client;
        }

        TimeProvider time = _options.TimeProvider;
        Ended(null);
        DateTimeOffset deadline = _endedAt!.Value + _options.ConnectTimeout;
        while (true)
        {
            if (_backoff > TimeSpan.Zero)
            {
                if (time.GetUtcNow() + _backoff >= deadline)
                {
                    throw GiveUp();
                }

                await Task.Delay(_backoff, time, cancellationToken).ConfigureAwait(false);
            }

            TimeSpan left = deadline - time.GetUtcNow();
            if (left <= TimeSpan.Zero)
            {
                throw GiveUp();
            }

            _backoff = _backoff == TimeSpan.Zero ? _options.FirstBackoff
                : _backoff * 2 < _options.MaxBackoff ? _backoff * 2 : _options.MaxBackoff;
            try
            {
                TinyServerClient client = await DialAsync(left, cancellationToken).ConfigureAwait(false);
                Reconnects++;
                Adopt(client);
                return client;
            }
            catch (Exception e) when (Retried(e))
            {
                // Refused, reset or closed before the banner (a restart): try again a little later.
                _failure = ExceptionDispatchInfo.Capture(e);
            }
        }
    }

    // The last failure of the reconnect (a dial's, or the notice that ended the last connection), else a timeout.
    private Exception GiveUp()
    {
        _failure?.Throw();
        return new TimeoutException($"the connection ended and was not replaced: the connect timeout ({_options.ConnectTimeout.TotalSeconds} s) left no time for a dial");
    }

    // One dial, abandoned when the reconnect's time is up (connected but no banner, or a connect or TLS handshake not
    // done): its token is cancelled then (by the deadline's own timer, so at the deadline itself), and a connection it
    // still makes is closed.
    private async Task<TinyServerClient> DialAsync(TimeSpan left, CancellationToken cancellationToken)
    {
        using var abandon = new CancellationTokenSource(left, _options.TimeProvider);
        using CancellationTokenRegistration caller = cancellationToken.UnsafeRegister(static source => ((CancellationTokenSource)source!).Cancel(), abandon);
        Task<TinyServerClient> dial = _connect(abandon.Token);
        try
        {
            return await dial.WaitAsync(abandon.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException e) when (abandon.IsCancellationRequested)
        {
            _ = dial.ContinueWith(
                static done =>
                {
                    if (done.IsCompletedSuccessfully)
                    {
                        _ = done.Result.DisposeAsync().AsTask();
                    }
                    else
                    {
                        _ = done.Exception; // Observed: the abandoned dial's failure no longer matters.
                    }
                },
                CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            if (cancellationToken.IsCancellationRequested)
            {
                throw;
            }

            throw new TimeoutException(
                $"no new connection within the connect timeout ({_options.ConnectTimeout.TotalSeconds} s): the last dial, still under way (connected without a banner, or the connect or TLS handshake not done), was abandoned at it", e);
        }
    }

    // A dial failure worth another try: not a wrong banner, a failed TLS handshake, or the caller's cancellation.
    private static bool Retried(Exception e) =>
        e is SocketException || (e is IOException and not ProtocolException and not TlsHandshakeException);

    private void Adopt(TinyServerClient client)
    {
        _client = client;
        _reading = new CancellationTokenSource();
        _next = client.ReadReplyAsync(_reading.Token);
    }

    // Closes the current connection: its pending read is cancelled and awaited first, then the connection disposed.
    private async Task DropAsync()
    {
        TinyServerClient? client = _client;
        Task<string?>? next = _next;
        CancellationTokenSource? reading = _reading;
        _client = null;
        _next = null;
        _reading = null;
        if (reading is not null)
        {
            await reading.CancelAsync().ConfigureAwait(false);
        }

        if (next is not null)
        {
            // Its outcome (a reply, the close, the cancellation) no longer matters.
            await next.ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default).ConfigureAwait(false);
        }

        if (client is not null)
        {
            await client.DisposeAsync().ConfigureAwait(false);
        }

        reading?.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed.IsCancellationRequested)
        {
            return;
        }

        await _disposed.CancelAsync().ConfigureAwait(false);
        await DropAsync().ConfigureAwait(false);
        _disposed.Dispose();
    }
}
