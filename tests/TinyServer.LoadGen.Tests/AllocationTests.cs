using System.Globalization;
using TinyServer.LoadGen.Tests.Infrastructure;
using TinyServer.Server;

namespace TinyServer.LoadGen.Tests;

[Trait("Tier", "unit")]
public sealed class AllocationTests : ServerTests
{
    [Fact]
    public async Task Nothing_is_allocated_per_request()
    {
        string[] Args(int requests) =>
            LoadGenerator.At(Server.Port, "-c", "2", "-P", "8", "-n", requests.ToString(CultureInfo.InvariantCulture), "--command", "ECHO hello:3,TIME:1", "--json");

        await AllocatedByAsync(Args(1000)); // The first run pays for what is set up once.
        long few = await AllocatedByAsync(Args(1000));
        long many = await AllocatedByAsync(Args(21_000));

        // 20,000 more requests: even one small object each would be hundreds of kilobytes.
        Assert.InRange(many - few, -16_384, 16_384);
    }

    [Fact]
    public async Task Nothing_is_allocated_per_request_over_tls_after_the_handshakes()
    {
        await using TestServer server = await TestServer.StartAsync(new ServerOptions { TlsPort = 0, TlsCertificate = Certificates.SelfSigned() });
        string[] Args(int requests) =>
            LoadGenerator.At(server.TlsPort!.Value, "--tls", "--insecure", "-c", "2", "-P", "8", "-n", requests.ToString(CultureInfo.InvariantCulture), "--command", "ECHO hello:3,TIME:1", "--json");

        await AllocatedByAsync(Args(1000));
        long few = await AllocatedByAsync(Args(1000));
        long many = await AllocatedByAsync(Args(21_000));

        // The handshakes allocate the same in both runs; 20,000 more requests must add nothing.
        Assert.InRange(many - few, -16_384, 16_384);
    }

    // Bytes the run allocates on its own thread (the whole run happens on the thread that calls Cli.Run).
    private static async Task<long> AllocatedByAsync(string[] args)
    {
        var done = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            using var output = new StringWriter();
            long before = GC.GetAllocatedBytesForCurrentThread();
            int code = Cli.Run(args, output, TextWriter.Null);
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            if (code == 0)
            {
                done.SetResult(allocated);
            }
            else
            {
                done.SetException(new InvalidOperationException($"exit code {code}: {output}"));
            }
        });
        thread.Start();
        return await done.Task.WaitAsync(Timeouts.Run);
    }
}
