using System.Buffers;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using TinyServer.Protocol;
using TinyServer.Server;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Operations;

/// <summary>The TinyServer meter read in process through a MeterListener, after real traffic over sockets.</summary>
[Trait("Tier", "process")]
public class MetricsTests
{
    private const string Banner = "WELCOME, I'm TinyServer not pressure\n";

    [Fact]
    public async Task Every_instrument_counts_exactly_what_the_clients_did()
    {
        await using TestServer server = await TestServer.StartAsync(new ServerOptions { MaxConnections = 1, MaxLineLength = 16, LingerTimeoutSeconds = 0 });
        using var reader = new MeterReader(server.Metrics.Meter);
        long sent = 0;
        long received = 0;

        // One client: every command, both request errors, several batches (one write per line, then a pipeline).
        await using (RawConnection client = await RawConnection.OpenAsync(server.EndPoint))
        {
            received += Banner.Length;
            foreach (string request in new[] { "TIME\n", "ECHO hi\n", "HELP\n" })
            {
                await client.SendAsync(request);
                sent += request.Length;
                received += (await client.ReadLineAsync())!.Length + 1;

                // Held open, it makes the next client one over the limit.
                if (request == "HELP\n")
                {
                    await using RawConnection rejected = await RawConnection.ConnectAsync(server.EndPoint);
                    Assert.Equal(["ERROR TOO_MANY_CONNECTIONS"], await rejected.ReadLinesToEndAsync());
                    received += "ERROR TOO_MANY_CONNECTIONS\n".Length;
                }
            }

            const string Pipeline = "FOO\nTIME x\nECHO again\nQUIT\nTIME\n";
            await client.SendAsync(Pipeline);
            sent += Pipeline.Length;
            List<string> replies = await client.ReadLinesToEndAsync();
            Assert.Equal(["ERROR UNKNOWN_COMMAND", "ERROR BAD_ARGUMENTS", "ECHO again", "BYE"], replies);
            received += replies.Sum(line => line.Length + 1);
        }

        await server.WaitForAllClosedAsync(1);

        // A second client: a line too long (over 16 bytes).
        await using (RawConnection client = await RawConnection.OpenAsync(server.EndPoint))
        {
            received += Banner.Length;
            const string TooLong = "ECHO this line is too long\n";
            await client.SendAsync(TooLong);
            sent += TooLong.Length;
            Assert.Equal(["ERROR LINE_TOO_LONG"], await client.ReadLinesToEndAsync());
            received += "ERROR LINE_TOO_LONG\n".Length;
        }

        await server.WaitForAllClosedAsync(2);
        IReadOnlyDictionary<string, long> values = reader.Collect();
        Assert.Equal(0, values["tinyserver.connections.active"]);
        Assert.Equal(2, values["tinyserver.connections.accepted"]);
        Assert.Equal(1, values["tinyserver.connections.rejected{reason=max_connections}"]);
        Assert.Equal(1, values["tinyserver.commands{command=TIME}"]);
        Assert.Equal(2, values["tinyserver.commands{command=ECHO}"]);
        Assert.Equal(1, values["tinyserver.commands{command=HELP}"]);
        Assert.Equal(1, values["tinyserver.commands{command=QUIT}"]);
        Assert.Equal(1, values["tinyserver.errors{code=UNKNOWN_COMMAND}"]);
        Assert.Equal(1, values["tinyserver.errors{code=BAD_ARGUMENTS}"]);
        Assert.Equal(1, values["tinyserver.errors{code=LINE_TOO_LONG}"]);
        Assert.Equal(1, values["tinyserver.errors{code=TOO_MANY_CONNECTIONS}"]);
        Assert.Equal(0, values["tinyserver.errors{code=IDLE_TIMEOUT}"]);
        Assert.Equal(0, values["tinyserver.errors{code=SHUTTING_DOWN}"]);
        Assert.Equal(sent, values["tinyserver.bytes.received"]);
        Assert.Equal(received, values["tinyserver.bytes.sent"]);

        // One duration per read that answered something: at least the three single-line reads and the pipeline
        // (TCP may split a write), never more than one per request; each one short and positive.
        double[] durations = [.. reader.Recorded.Where(r => r.Instrument == "tinyserver.batch.duration").Select(r => r.Value)];
        Assert.InRange(durations.Length, 4, 8);
        Assert.All(durations, d => Assert.InRange(d, 0, Timeouts.Read.TotalMicroseconds));
    }

    [Fact]
    public async Task Idle_timeout_and_shutdown_errors_are_counted()
    {
        await using TestServer server = await TestServer.StartAsync(new ServerOptions { IdleTimeoutSeconds = 1, LingerTimeoutSeconds = 0 });
        using var reader = new MeterReader(server.Metrics.Meter);
        await using (RawConnection idle = await RawConnection.OpenAsync(server.EndPoint))
        {
            Assert.Equal(["ERROR IDLE_TIMEOUT"], await idle.ReadLinesToEndAsync());
        }

        await server.WaitForAllClosedAsync(1);
        await using RawConnection stopping = await RawConnection.OpenAsync(server.EndPoint);
        Assert.Equal(1, reader.Collect()["tinyserver.connections.active"]);
        Task stop = server.StopAsync();
        Assert.Equal(["ERROR SHUTTING_DOWN"], await stopping.ReadLinesToEndAsync());
        await stop.WaitAsync(Timeouts.Read);

        // Stopped, not yet disposed: the meter is still there to read.
        IReadOnlyDictionary<string, long> values = reader.Collect();
        Assert.Equal(1, values["tinyserver.errors{code=IDLE_TIMEOUT}"]);
        Assert.Equal(1, values["tinyserver.errors{code=SHUTTING_DOWN}"]);
        Assert.Equal(0, values["tinyserver.connections.active"]);
    }

    [Fact]
    public async Task The_per_address_limit_and_the_PROXY_protocol_rejections_have_their_own_reasons()
    {
        await using (TestServer server = await TestServer.StartAsync(new ServerOptions { MaxConnectionsPerAddress = 1 }))
        {
            using var reader = new MeterReader(server.Metrics.Meter);
            await using RawConnection held = await RawConnection.OpenAsync(server.EndPoint);
            await using (RawConnection second = await RawConnection.ConnectAsync(server.EndPoint))
            {
                Assert.Equal(["ERROR TOO_MANY_CONNECTIONS"], await second.ReadLinesToEndAsync());
            }

            IReadOnlyDictionary<string, long> values = reader.Collect();
            Assert.Equal(1, values["tinyserver.connections.rejected{reason=max_connections_per_address}"]);
            Assert.Equal(0, values["tinyserver.connections.rejected{reason=max_connections}"]);
            Assert.Equal(1, values["tinyserver.errors{code=TOO_MANY_CONNECTIONS}"]);
        }

        var proxied = new ServerOptions { ProxyProtocol = true, TrustedProxies = [System.Net.IPNetwork.Parse("127.0.0.2/32")] };
        await using (TestServer server = await TestServer.StartAsync(proxied))
        {
            using var reader = new MeterReader(server.Metrics.Meter);
            await using (RawConnection untrusted = await RawConnection.ConnectAsync(server.EndPoint))
            {
                await untrusted.SendAsync("PROXY TCP4 203.0.113.9 127.0.0.1 5555 40000\r\n");
                Assert.Empty(await untrusted.ReadLinesToEndAsync());
            }

            using var deadline = new CancellationTokenSource(Timeouts.Read);
            while (reader.Collect()["tinyserver.connections.rejected{reason=proxy_untrusted_peer}"] != 1)
            {
                await Task.Delay(20, deadline.Token);
            }

            Assert.Equal(0, reader.Collect()["tinyserver.connections.rejected{reason=proxy_timeout}"]);
        }
    }

    [Fact]
    public void Publishing_a_batch_allocates_nothing_even_while_the_histogram_is_recorded()
    {
        using ServiceProvider services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var metrics = new ServerMetrics(services.GetRequiredService<IMeterFactory>(), new ConnectionTracker(new ServerOptions()));
        long recorded = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (ReferenceEquals(instrument.Meter, metrics.Meter))
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<double>((_, _, _, _) => recorded++);
        listener.Start();

        byte[] batch = "ECHO hello\nTIME\nHELP\nFOO\nECHO\n"u8.ToArray();
        var output = new ArrayBufferWriter<byte>(1024 * 1024);
        using var session = new ServerSession(TimeProvider.System);
        var published = default(ServerMetrics.Published);
        void RunBatches(int count)
        {
            for (int i = 0; i < count; i++)
            {
                output.ResetWrittenCount();
                long started = metrics.BatchStarted();
                session.Process(new ReadOnlySequence<byte>(batch), false, output, out _);
                metrics.OnBatch(session, ref published, started);
            }
        }

        RunBatches(1_000);
        long before = GC.GetAllocatedBytesForCurrentThread();
        RunBatches(2_000);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal(3_000, recorded);

        using var reader = new MeterReader(metrics.Meter);
        IReadOnlyDictionary<string, long> values = reader.Collect();
        Assert.Equal(3_000, values["tinyserver.commands{command=ECHO}"]);
        Assert.Equal(3_000, values["tinyserver.commands{command=TIME}"]);
        Assert.Equal(3_000, values["tinyserver.errors{code=UNKNOWN_COMMAND}"]);
        Assert.Equal(3_000, values["tinyserver.errors{code=BAD_ARGUMENTS}"]);
        Assert.Equal(3_000L * batch.Length, values["tinyserver.bytes.received"]);
        Assert.Equal(session.BytesOut, values["tinyserver.bytes.sent"]);
    }

    [Fact]
    public void Rejections_are_counted_by_reason_and_the_connection_limit_is_always_reported()
    {
        using ServiceProvider services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var metrics = new ServerMetrics(services.GetRequiredService<IMeterFactory>(), new ConnectionTracker(new ServerOptions()));
        using var reader = new MeterReader(metrics.Meter);
        Assert.Equal(0, reader.Collect()["tinyserver.connections.rejected{reason=max_connections}"]);
        metrics.Rejected("some_other_reason");
        metrics.Rejected("some_other_reason");
        IReadOnlyDictionary<string, long> values = reader.Collect();
        Assert.Equal(2, values["tinyserver.connections.rejected{reason=some_other_reason}"]);
        Assert.Equal(0, values["tinyserver.connections.rejected{reason=max_connections}"]);
    }
}
