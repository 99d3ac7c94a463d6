using System.Buffers;
using System.Diagnostics.Metrics;
using System.IO.Pipelines;
using System.Text;
using BenchmarkDotNet.Attributes;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using TinyServer.Protocol;
using TinyServer.Server;

namespace TinyServer.Benchmarks;

/// <summary>
/// The server's whole per-connection path without sockets: <see cref="LineConnectionHandler.OnConnectedAsync"/> on a
/// <see cref="DefaultConnectionContext"/> whose transport is one end of two in-memory pipes. Every operation writes 16
/// pipelined requests in one flush (one read for the server) and reads the 16 replies; time and allocation are
/// reported per request.
/// </summary>
/// <remarks>
/// Both pipes run their continuations inline, so the handler's read loop runs inside the client's flush: what is
/// measured is the handler's own work (pipe read, framing, parsing, formatting, pipe write and flush), without
/// thread-pool hops or the socket transport's system calls, which the end-to-end comparison (compare.sh) covers.
/// </remarks>
[MemoryDiagnoser]
public class ConnectionHandlerBenchmarks
{
    private const int Pipeline = 16;
    private static readonly PipeOptions InlinePipe = new(readerScheduler: PipeScheduler.Inline, writerScheduler: PipeScheduler.Inline, useSynchronizationContext: false);

    private Pipe _toServer = null!;
    private Pipe _fromServer = null!;
    private Task _handler = Task.CompletedTask;
    private byte[] _requests = [];
    private long _replyBytes;
    private ServiceProvider? _services;

    /// <summary><c>Echo</c>: 16 × <c>ECHO hello</c>. <c>Mixed</c>: TIME, ECHO hello, HELP and PING (unknown), 4 of each.</summary>
    [Params("Echo", "Mixed")]
    public string Workload { get; set; } = "Echo";

    [GlobalSetup]
    public void Setup()
    {
        string[] lines = Workload == "Echo"
            ? [.. Enumerable.Repeat("ECHO hello", Pipeline)]
            : [.. Enumerable.Range(0, Pipeline).Select(i => (i % 4) switch { 0 => "TIME", 1 => "ECHO hello", 2 => "HELP", _ => "PING" })];
        _requests = Encoding.ASCII.GetBytes(string.Concat(lines.Select(l => l + "\n")));

        _toServer = new Pipe(InlinePipe);
        _fromServer = new Pipe(InlinePipe);
        var connection = new DefaultConnectionContext("bench", new DuplexPipe(_toServer.Reader, _fromServer.Writer), new DuplexPipe(_fromServer.Reader, _toServer.Writer));
        var options = new ServerOptions();
        var tracker = new ConnectionTracker(options);
        _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var metrics = new ServerMetrics(_services.GetRequiredService<IMeterFactory>(), tracker);
        var handler = new LineConnectionHandler(options, TimeProvider.System, tracker, metrics, NullLogger<LineConnectionHandler>.Instance);
        _handler = handler.OnConnectedAsync(connection);

        string banner = ReadText(Wire.Banner.Length);
        if (banner != Wire.BannerText + "\n")
        {
            throw new InvalidOperationException($"unexpected banner '{banner}'");
        }

        // One round to learn the length of the replies (TIME replies have a fixed length) and check them.
        WriteRequests();
        string replies = ReadText(0);
        string[] got = replies.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        bool ok = got.Length == Pipeline && got.Zip(lines).All(p => p.Second switch
        {
            "TIME" => ReplyReader.IsTimeReply(Encoding.ASCII.GetBytes(p.First)),
            "ECHO hello" => p.First == "ECHO hello",
            "HELP" => p.First + "\n" == Encoding.ASCII.GetString(Wire.Help),
            _ => p.First == "ERROR UNKNOWN_COMMAND",
        });
        if (!ok)
        {
            throw new InvalidOperationException($"unexpected replies '{replies}'");
        }

        _replyBytes = replies.Length;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _toServer.Writer.Complete();
        if (!_handler.Wait(TimeSpan.FromSeconds(10)))
        {
            throw new TimeoutException("the handler did not end after the client's half-close");
        }

        _fromServer.Reader.Complete();
        _services?.Dispose();
    }

    /// <summary>16 requests in one read and their 16 replies; reported per request.</summary>
    [Benchmark(OperationsPerInvoke = Pipeline)]
    public long Pipelined16()
    {
        WriteRequests();
        long read = 0;
        PipeReader replies = _fromServer.Reader;
        while (read < _replyBytes)
        {
            ValueTask<ReadResult> pending = replies.ReadAsync();
            ReadResult result = pending.IsCompletedSuccessfully ? pending.Result : pending.AsTask().GetAwaiter().GetResult();
            if (result.IsCompleted)
            {
                throw new InvalidOperationException("the handler closed the connection");
            }

            read += result.Buffer.Length;
            replies.AdvanceTo(result.Buffer.End);
        }

        return read;
    }

    private void WriteRequests()
    {
        _toServer.Writer.Write(_requests);
        ValueTask<FlushResult> flush = _toServer.Writer.FlushAsync();
        if (!flush.IsCompletedSuccessfully)
        {
            flush.AsTask().GetAwaiter().GetResult();
        }
    }

    /// <summary>Reads at least <paramref name="length"/> bytes (at least one read when 0) as text, for the setup checks.</summary>
    private string ReadText(int length)
    {
        var text = new StringBuilder();
        do
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            ReadResult result = _fromServer.Reader.ReadAsync(timeout.Token).AsTask().GetAwaiter().GetResult();
            text.Append(Encoding.ASCII.GetString(result.Buffer.ToArray()));
            _fromServer.Reader.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                break;
            }
        }
        while (text.Length < length);

        return text.ToString();
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
