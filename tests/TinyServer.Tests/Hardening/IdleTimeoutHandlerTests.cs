using System.IO.Pipelines;
using System.Text;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using TinyServer.Server;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Hardening;

/// <summary>
/// The idle clock of <see cref="LineConnectionHandler"/> over in-memory pipes, with Kestrel's heartbeat in the test's
/// hands: the output pipe pauses at 1,024 unread bytes, as a socket whose peer does not read would.
/// </summary>
public sealed class IdleTimeoutHandlerTests : IAsyncDisposable
{
    private const string Banner = "WELCOME, I'm TinyServer not pressure\n";
    private const string Goodbye = "ERROR IDLE_TIMEOUT\n";

    private readonly Pipe _toServer = new();
    private readonly Pipe _fromServer = new(new PipeOptions(pauseWriterThreshold: 1024, resumeWriterThreshold: 512, useSynchronizationContext: false));
    private readonly Heartbeat _heartbeat = new();
    private readonly Connection _connection;
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();

    public IdleTimeoutHandlerTests()
    {
        // An abort ends the connection's pipes, as a transport's does: a waiting flush then completes.
        _connection = new Connection(new Duplex(_toServer.Reader, _fromServer.Writer), new Duplex(_fromServer.Reader, _toServer.Writer), () => _fromServer.Reader.Complete());
        _connection.Features.Set<IConnectionHeartbeatFeature>(_heartbeat);
    }

    [Fact]
    public async Task A_goodbye_that_waits_a_whole_timeout_for_a_peer_that_does_not_read_is_cut()
    {
        Task serving = Start(idleTimeoutSeconds: 1);
        // Ten replies of 98 bytes leave the unread output just below the pause threshold: the goodbye crosses it.
        string lines = string.Concat(Enumerable.Repeat("ECHO " + new string('g', 92) + "\n", 10));
        await SendAsync(lines);
        Assert.Equal(Banner + lines, await PeekAsync(Banner.Length + lines.Length));

        await Task.Delay(1100);
        _heartbeat.Beat(); // A whole timeout without a line: the goodbye, whose flush waits for the peer.
        Assert.Equal(Banner + lines + Goodbye, await PeekAsync(Banner.Length + lines.Length + Goodbye.Length));
        Assert.False(serving.IsCompleted);

        await Task.Delay(1100);
        _heartbeat.Beat(); // The goodbye waited a whole timeout too: the connection is cut.
        await serving.WaitAsync(Timeouts.Read);
        Assert.True(_connection.Aborted);
    }

    [Fact]
    public async Task A_flush_that_waited_for_the_peer_to_read_restarts_the_clock()
    {
        Task serving = Start(idleTimeoutSeconds: 2);
        Assert.Equal(Banner, await TakeAsync(Banner.Length));
        string lines = string.Concat(Enumerable.Repeat("ECHO " + new string('w', 194) + "\n", 10)); // 2,000 bytes: the flush waits.
        await SendAsync(lines);
        Assert.Equal(lines, await PeekAsync(lines.Length));

        await Task.Delay(1500);
        Assert.Equal(lines, await TakeAsync(lines.Length)); // The peer reads: the flush completes.
        await Task.Delay(1000);
        _heartbeat.Beat(); // 2.5 s after the last line, 1 s after the peer read: not idle.
        await Task.Delay(200);
        Assert.False(_fromServer.Reader.TryRead(out ReadResult early), $"{early.Buffer.Length} bytes sent");

        await Task.Delay(1000);
        _heartbeat.Beat(); // Now 2.2 s after the peer read.
        Assert.Equal(Goodbye, await TakeAsync(Goodbye.Length));
        await serving.WaitAsync(Timeouts.Read);
        Assert.False(_connection.Aborted); // Closed gracefully.
    }

    public async ValueTask DisposeAsync()
    {
        await _toServer.Writer.CompleteAsync();
        await _fromServer.Reader.CompleteAsync();
        await _services.DisposeAsync();
    }

    private Task Start(int idleTimeoutSeconds)
    {
        var options = new ServerOptions { IdleTimeoutSeconds = idleTimeoutSeconds };
        var tracker = new ConnectionTracker(options);
        var metrics = new ServerMetrics(_services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), tracker);
        var handler = new LineConnectionHandler(options, TimeProvider.System, tracker, metrics, NullLogger<LineConnectionHandler>.Instance);
        return handler.OnConnectedAsync(_connection);
    }

    private async Task SendAsync(string text) => await _toServer.Writer.WriteAsync(Encoding.ASCII.GetBytes(text)).AsTask().WaitAsync(Timeouts.Read);

    /// <summary>
    /// Waits until <paramref name="length"/> bytes were sent and returns them, leaving them unread: not even examined,
    /// since the pipe's backpressure counts only bytes not examined yet.
    /// </summary>
    private async Task<string> PeekAsync(int length)
    {
        using var deadline = new CancellationTokenSource(Timeouts.Read);
        while (true)
        {
            ReadResult result = await _fromServer.Reader.ReadAsync(deadline.Token);
            _fromServer.Reader.AdvanceTo(result.Buffer.Start);
            if (result.Buffer.Length >= length)
            {
                return Encoding.ASCII.GetString(result.Buffer.Slice(0, length));
            }

            await Task.Delay(10, deadline.Token);
        }
    }

    /// <summary>Waits until <paramref name="length"/> bytes were sent and reads them.</summary>
    private async Task<string> TakeAsync(int length)
    {
        string text = await PeekAsync(length);
        ReadResult result = await _fromServer.Reader.ReadAsync().AsTask().WaitAsync(Timeouts.Read);
        _fromServer.Reader.AdvanceTo(result.Buffer.GetPosition(length));
        return text;
    }

    /// <summary>Kestrel's one-second heartbeat, beaten by the test.</summary>
    private sealed class Heartbeat : IConnectionHeartbeatFeature
    {
        private readonly List<(Action<object> Action, object State)> _handlers = [];

        public void OnHeartbeat(Action<object> action, object state) => _handlers.Add((action, state));

        public void Beat() => _handlers.ForEach(handler => handler.Action(handler.State));
    }

    private sealed class Connection(IDuplexPipe transport, IDuplexPipe application, Action onAbort) : DefaultConnectionContext("idle", transport, application)
    {
        public bool Aborted { get; private set; }

        public override void Abort(ConnectionAbortedException abortReason)
        {
            Aborted = true;
            onAbort();
            base.Abort(abortReason);
        }
    }

    private sealed class Duplex(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
