using System.Buffers;
using System.Diagnostics.Metrics;
using System.IO.Pipelines;
using System.Text;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using TinyServer.Protocol;
using TinyServer.Server;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Server;

/// <summary>
/// The server's per-request path through the whole connection handler allocates nothing: 10,000 requests, 16 to a
/// read, through <see cref="LineConnectionHandler"/> over in-memory pipes whose continuations run inline, so every
/// allocation of the handler lands on this thread's counter.
/// </summary>
[Trait("Tier", "unit")]
public class HandlerAllocationTests
{
    private const int Pipeline = 16;

    // The pipes stand in for the transport: their blocks come from a pool of their own that never gives memory back,
    // so a trim of the shared ArrayPool (on a gen 2 collection caused by other tests) cannot make the pipe allocate
    // a block on this thread and be counted against the handler.
    private static readonly PipeOptions Inline = new(pool: new KeepingPool(), readerScheduler: PipeScheduler.Inline, writerScheduler: PipeScheduler.Inline, useSynchronizationContext: false);

    [Theory]
    [InlineData("ECHO hello", false)]
    [InlineData("TIME", false)]
    [InlineData("HELP", false)]
    [InlineData("NOPE", false)]
    [InlineData("ECHO", false)]
    [InlineData("ECHO hello", true)]
    [InlineData("NOPE", true)]
    public async Task Ten_thousand_requests_through_the_handler_allocate_nothing(string request, bool metricsListened)
    {
        // With a listener on the meter, the batch duration is timed and recorded on every read too.
        using ServiceProvider services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var toServer = new Pipe(Inline);
        var fromServer = new Pipe(Inline);
        var connection = new DefaultConnectionContext("alloc", new Duplex(toServer.Reader, fromServer.Writer), new Duplex(fromServer.Reader, toServer.Writer));
        var options = new ServerOptions();
        var tracker = new ConnectionTracker(options);
        var metrics = new ServerMetrics(services.GetRequiredService<IMeterFactory>(), tracker);
        long recorded = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (metricsListened && ReferenceEquals(instrument.Meter, metrics.Meter))
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<double>((_, _, _, _) => recorded++);
        listener.Start();
        var handler = new LineConnectionHandler(options, TimeProvider.System, tracker, metrics, NullLogger<LineConnectionHandler>.Instance);
        Task serving = handler.OnConnectedAsync(connection);
        byte[] batch = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat(request + "\n", Pipeline)));
        Assert.Equal(Wire.Banner.Length, Drain(fromServer.Reader));

        long replies = 0;
        void Run(int batches)
        {
            for (int i = 0; i < batches; i++)
            {
                toServer.Writer.Write(batch);
                Assert.True(toServer.Writer.FlushAsync().IsCompletedSuccessfully); // The handler answered inline.
                replies += Drain(fromServer.Reader);
            }
        }

        Run(200); // Warm up: JIT tiers, pooled buffers, the clock's time zone.
        long before = GC.GetAllocatedBytesForCurrentThread();
        Run(10_000 / Pipeline);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(0, allocated);
        Assert.True(replies >= (200 + (10_000 / Pipeline)) * Pipeline * 5L, $"only {replies} reply bytes");
        toServer.Writer.Complete();
        await serving.WaitAsync(Timeouts.Read);
        Assert.Equal(metricsListened ? 200 + (10_000 / Pipeline) : 0, recorded); // One duration per read, while listened.
    }

    /// <summary>Takes every reply byte written so far (the handler flushed inline).</summary>
    private static int Drain(PipeReader reader)
    {
        if (!reader.TryRead(out ReadResult result))
        {
            return 0;
        }

        int length = (int)result.Buffer.Length;
        reader.AdvanceTo(result.Buffer.End);
        return length;
    }

    /// <summary>A memory pool that keeps every block it made, for reuse, and never lets go of one.</summary>
    private sealed class KeepingPool : MemoryPool<byte>
    {
        private readonly Stack<Block> _free = new();

        public override int MaxBufferSize => Block.Size;

        public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
        {
            ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, Block.Size);
            lock (_free)
            {
                return _free.Count > 0 ? _free.Pop() : new Block(this);
            }
        }

        protected override void Dispose(bool disposing)
        {
        }

        private sealed class Block(KeepingPool pool) : IMemoryOwner<byte>
        {
            public const int Size = 4096;

            public Memory<byte> Memory { get; } = new byte[Size];

            public void Dispose()
            {
                lock (pool._free)
                {
                    pool._free.Push(this);
                }
            }
        }
    }

    private sealed class Duplex(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
