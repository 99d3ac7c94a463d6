using System.IO.Pipelines;
using System.Text;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using TinyServer.Server;

namespace TinyServer.Tests.Infrastructure;

/// <summary>
/// One connection to <see cref="LineConnectionHandler"/> over in-memory pipes, with the clock (a
/// <see cref="FakeTimeProvider"/>) and the server's heartbeat in the test's hands. An abort ends the connection's pipes,
/// as a transport's does, so a waiting flush then completes.
/// </summary>
public sealed class PipeConnection : IAsyncDisposable
{
    private readonly Pipe _toServer;
    private readonly Pipe _fromServer;
    private readonly CountingReader _input;
    private readonly Connection _connection;
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private ConnectionTracker? _tracker;

    /// <param name="toServer">The client-to-server pipe's options (e.g. a pause threshold of 1, so that a send completes only once the server consumed it).</param>
    /// <param name="fromServer">The server-to-client pipe's options (e.g. a small pause threshold, as a socket whose peer does not read).</param>
    public PipeConnection(PipeOptions? toServer = null, PipeOptions? fromServer = null)
    {
        _toServer = new Pipe(toServer ?? new PipeOptions(useSynchronizationContext: false));
        _fromServer = new Pipe(fromServer ?? new PipeOptions(useSynchronizationContext: false));
        _input = new CountingReader(_toServer.Reader);
        _connection = new Connection(new Duplex(_input, _fromServer.Writer), new Duplex(_fromServer.Reader, _toServer.Writer), () => _fromServer.Reader.Complete());
    }

    /// <summary>The server's clock: every timeout of the handler reads it, and only <see cref="FakeTimeProvider.Advance"/> moves it.</summary>
    public FakeTimeProvider Time { get; } = new();

    /// <summary>True once the handler aborted the connection.</summary>
    public bool Aborted => _connection.Aborted;

    /// <summary>How many reads the handler has started: it starts one more only once done with what the last one returned.</summary>
    public int Reads => _input.Reads;

    /// <summary>How many times the handler canceled its pending read (as the idle timeout and shutdown do, at once).</summary>
    public int ReadsCanceled => _input.Canceled;

    /// <summary>Waits until the handler has started <paramref name="count"/> reads.</summary>
    public async Task WaitForReadsAsync(int count)
    {
        using var deadline = new CancellationTokenSource(Timeouts.Read);
        while (_input.Reads < count)
        {
            await Task.Delay(5, deadline.Token);
        }
    }

    /// <summary>Starts the handler on this connection; the task ends when the handler does.</summary>
    public Task Start(ServerOptions options)
    {
        var tracker = _tracker = new ConnectionTracker(options) { BeatEverySecond = false };
        var metrics = new ServerMetrics(_services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), tracker);
        var handler = new LineConnectionHandler(options, Time, tracker, metrics, NullLogger<LineConnectionHandler>.Instance);
        return handler.OnConnectedAsync(_connection);
    }

    /// <summary>The server's one-second heartbeat (<see cref="ConnectionTracker.Beat"/>), beaten by the test.</summary>
    public void Beat() => _tracker?.Beat();

    /// <summary>Sends <paramref name="text"/>; the flush's result says whether the server stopped reading.</summary>
    public async Task<FlushResult> SendAsync(string text) => await _toServer.Writer.WriteAsync(Encoding.ASCII.GetBytes(text)).AsTask().WaitAsync(Timeouts.Read);

    /// <summary>
    /// Waits until <paramref name="length"/> bytes were sent and returns them, leaving them unread: not even examined,
    /// since the pipe's backpressure counts only bytes not examined yet.
    /// </summary>
    public async Task<string> PeekAsync(int length)
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
    public async Task<string> TakeAsync(int length)
    {
        string text = await PeekAsync(length);
        ReadResult result = await _fromServer.Reader.ReadAsync().AsTask().WaitAsync(Timeouts.Read);
        _fromServer.Reader.AdvanceTo(result.Buffer.GetPosition(length));
        return text;
    }

    public async ValueTask DisposeAsync()
    {
        await _toServer.Writer.CompleteAsync();
        await _fromServer.Reader.CompleteAsync();
        await _services.DisposeAsync();
    }

    private sealed class CountingReader(PipeReader reader) : PipeReader
    {
        private int _reads;
        private int _canceled;

        public int Reads => Volatile.Read(ref _reads);

        public int Canceled => Volatile.Read(ref _canceled);

        public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref _reads);
            return reader.ReadAsync(cancellationToken);
        }

        public override bool TryRead(out ReadResult result) => reader.TryRead(out result);

        public override void AdvanceTo(SequencePosition consumed) => reader.AdvanceTo(consumed);

        public override void AdvanceTo(SequencePosition consumed, SequencePosition examined) => reader.AdvanceTo(consumed, examined);

        public override void CancelPendingRead()
        {
            Interlocked.Increment(ref _canceled);
            reader.CancelPendingRead();
        }

        public override void Complete(Exception? exception = null) => reader.Complete(exception);
    }

    private sealed class Connection(IDuplexPipe transport, IDuplexPipe application, Action onAbort) : DefaultConnectionContext("pipe", transport, application)
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
