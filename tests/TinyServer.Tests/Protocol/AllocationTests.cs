using System.Buffers;
using TinyServer.Protocol;

namespace TinyServer.Tests.Protocol;

/// <summary>The steady-state request path allocates nothing (BenchmarkDotNet reports the same, with timings).</summary>
[Trait("Tier", "unit")]
public class AllocationTests
{
    [Fact]
    public void Ten_thousand_requests_through_the_session_allocate_nothing()
    {
        byte[] batch = "ECHO hello\nTIME\nHELP\nFOO\nECHO\nTIME x\r\nECHO padded  \n"u8.ToArray();
        var output = new ArrayBufferWriter<byte>(1024 * 1024);
        using var session = new ServerSession(TimeProvider.System);

        void RunBatches(int count)
        {
            for (int i = 0; i < count; i++)
            {
                output.ResetWrittenCount();
                session.Process(new ReadOnlySequence<byte>(batch), false, output, out _);
            }
        }

        RunBatches(1_000); // Warm up: JIT, the clock's time zone, pooled buffers.
        long before = GC.GetAllocatedBytesForCurrentThread();
        RunBatches(10_000 / 7 + 1);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, allocated);
        Assert.True(session.Requests >= 10_000 + 1_000);
    }
}
