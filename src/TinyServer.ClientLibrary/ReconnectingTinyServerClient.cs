using System.Net.Sockets;
using TinyServer.Protocol;

namespace TinyServer.ClientLibrary;

/// <summary>
/// Requests that were sent and never answered: the connection closed or broke with them in flight, without the
/// server's notice that it had not executed them. The server may or may not have executed them, so they were not
/// sent again; <see cref="Answered"/> holds the replies that did come (of a pipeline, in order).
/// </summary>
public sealed class RequestLostException(string message, IReadOnlyList<string> answered, IReadOnlyList<string> unanswered, Exception? inner = null)
    : IOException(message, inner)
{
    /// <summary>The replies received before the connection ended, one per command from the first.</summary>
    public IReadOnlyList<string> Answered { get; } = answered;

    /// <summary>The commands whose replies never came (they may have been executed).</summary>
    public IReadOnlyList<string> Unanswered { get; } = unanswered;
}

/// <summary>
/// How a <see cref="ReconnectingTinyServerClient"/> replaces its connection. Its <c>ConnectAsync</c> checks the ranges
/// before it dials (an <see cref="ArgumentOutOfRangeException"/>, or <see cref="ArgumentNullException"/> for a null
/// <see cref="TimeProvider"/>, names the property).
/// </summary>
public sealed record ReconnectOptions
{
    /// <summary>The longest <see cref="ConnectTimeout"/>: an hour.</summary>
    public static readonly TimeSpan LongestConnectTimeout = TimeSpan.FromHours(1);

    /// <summary>The shortest <see cref="FirstBackoff"/> and <see cref="MaxBackoff"/>: a millisecond (no busy redialling).</summary>
    public static readonly TimeSpan ShortestBackoff = TimeSpan.FromMilliseconds(1);

    /// <summary>The longest <see cref="FirstBackoff"/> and <see cref="MaxBackoff"/>: a minute.</summary>
    public static readonly TimeSpan LongestBackoff = TimeSpan.FromMinutes(1);

    /// <summary>
    /// How long the replacing of a connection may take, from when it ended (default 30 s; 0 to
    /// <see cref="LongestConnectTimeout"/>, 0 for a single try): failed dials (refused, closed before the banner) are
    /// tried again after <see cref="FirstBackoff"/>, doubling up to <see cref="MaxBackoff"/> apart, until then (no dial
    /// is made at or after it); then the last failure is thrown.
    /// </summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The wait after the first failed dial of a reconnect (default 50 ms; <see cref="ShortestBackoff"/> to <see cref="LongestBackoff"/>).</summary>
    public TimeSpan FirstBackoff { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>The longest wait between two dials of a reconnect (default 1 s; <see cref="ShortestBackoff"/> to <see cref="LongestBackoff"/>, not less than <see cref="FirstBackoff"/>).</summary>
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The clock that the waits between dials and <see cref="ConnectTimeout"/> are measured on (default
    /// <see cref="TimeProvider.System"/>; a test can give a fake one and advance it).
    /// </summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    internal void Validate()
    {
        ArgumentNullException.ThrowIfNull(TimeProvider, nameof(TimeProvider));
        ArgumentOutOfRangeException.ThrowIfLessThan(ConnectTimeout, TimeSpan.Zero, nameof(ConnectTimeout));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(ConnectTimeout, LongestConnectTimeout, nameof(ConnectTimeout));
        ArgumentOutOfRangeException.ThrowIfLessThan(FirstBackoff, ShortestBackoff, nameof(FirstBackoff));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(FirstBackoff, LongestBackoff, nameof(FirstBackoff));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxBackoff, FirstBackoff, nameof(MaxBackoff));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MaxBackoff, LongestBackoff, nameof(MaxBackoff));
    }
}

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
/// cancellation). Not safe for concurrent use: one request or pipeline at a time.
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
    public async Task<string> RequestAsync(string command, CancellationToken cancellationToken = default) =>
        (await PipelineAsync([command], cancellationToken).ConfigureAwait(false))[0];

    /// <summary>
    /// Sends the commands in one write and returns one reply per command. The commands a closing notice says were not
    /// executed are sent again on a new connection.
    /// </summary>
    /// <exception cref="RequestLostException">The connection ended with some of them in flight (the answered ones are in it).</exception>
    /// <exception cref="ServerClosedException">Every new connection was ended with a closing notice, unanswered, for <see cref="ReconnectOptions.ConnectTimeout"/>.</exception>
    /// <exception cref="SocketException">No new connection could be made within <see cref="ReconnectOptions.ConnectTimeout"/> (the last failure; or another failure of the connect).</exception>
    public async Task<IReadOnlyList<string>> PipelineAsync(IReadOnlyList<string> commands, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(commands);
        ObjectDisposedException.ThrowIf(_disposed.IsCancellationRequested, this);
        var replies = new List<string>(commands.Count);
        DateTimeOffset? endedAt = null; // When connections began to end without an answer: the reconnect deadline counts from it.
        string? gaveUp = null;
        while (replies.Count < commands.Count && gaveUp is null)
        {
            TinyServerClient client = await ReadyAsync(endedAt, cancellationToken).ConfigureAwait(false);
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
                        // Not executed: this one and those after it go again on a new connection, unless every
                        // connection has ended so since the first notice for ConnectTimeout.
                        await DropAsync().ConfigureAwait(false);
                        DateTimeOffset now = _options.TimeProvider.GetUtcNow();
                        endedAt = i > 0 ? now : endedAt ?? now;
                        if (now - endedAt >= _options.ConnectTimeout)
                        {
                            gaveUp = $"the server answered '{reply}' on every connection for {_options.ConnectTimeout.TotalSeconds} s; {unanswered.Length - i} request(s) were not executed";
                            break;
                        }

                        Resent += unanswered.Length - i;
                        break;
                    }

                    replies.Add(reply);
                    if (ReplyReader.IsBye(reply))
                    {
                        // QUIT ended the session: the server ignores the lines after it, so they go on a new connection.
                        Resent += unanswered.Length - i - 1;
                        endedAt = _options.TimeProvider.GetUtcNow();
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

        if (gaveUp is not null)
        {
            throw new ServerClosedException(gaveUp);
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

    // The connection to send on: the current one when it is still open and nothing came unasked, else a new one.
    private async Task<TinyServerClient> ReadyAsync(DateTimeOffset? endedAt, CancellationToken cancellationToken)
    {
        if (_client is not null && _next is { IsCompleted: true })
        {
            // Closed, broken, or a notice (or anything else) unasked while idle: nothing was in flight.
            await DropAsync().ConfigureAwait(false);
            endedAt ??= _options.TimeProvider.GetUtcNow();
        }

        if (_client is not null)
        {
            return _client;
        }

        TimeProvider time = _options.TimeProvider;
        DateTimeOffset deadline = (endedAt ?? time.GetUtcNow()) + _options.ConnectTimeout;
        TimeSpan backoff = _options.FirstBackoff;
        while (true)
        {
            try
            {
                TinyServerClient client = await _connect(cancellationToken).ConfigureAwait(false);
                Reconnects++;
                Adopt(client);
                return client;
            }
            catch (Exception e) when (Retried(e) && time.GetUtcNow() + backoff < deadline)
            {
                // Refused, reset or closed before the banner (a restart): try again a little later.
            }

            await Task.Delay(backoff, time, cancellationToken).ConfigureAwait(false);
            backoff = backoff * 2 < _options.MaxBackoff ? backoff * 2 : _options.MaxBackoff;
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
