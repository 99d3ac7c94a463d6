using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Text;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using TinyServer.Server;
using TinyServer.Tests.Infrastructure;
using TinyServer.Transport.Epoll;

namespace TinyServer.Tests.Server;

/// <summary>
/// The epoll transport's contract, through its own entry point (<see cref="EpollConnectionContextFactory"/>) and real
/// sockets, without the server: a fault in its loop costs one connection, never the process;
/// <see cref="ConnectionContext.ConnectionClosed"/> fires; the writer's Complete sends what was written; and a request
/// through the transport allocates nothing.
/// </summary>
[Trait("Tier", "unit")]
public class EpollContractTests
{
    [Fact]
    public async Task An_exception_in_a_continuation_on_the_loop_aborts_its_connection_only_and_is_logged_and_counted()
    {
        using ServiceProvider services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        IMeterFactory meters = services.GetRequiredService<IMeterFactory>();
        var logs = new ConcurrentQueue<(LogLevel Level, EventId Id, Exception? Exception)>();
        using var loggers = LoggerFactory.Create(logging => logging.AddProvider(new ListProvider(logs)));
        // One loop: the faulty connection and the healthy one share its thread.
        await using var transport = await Transport.StartAsync(new EpollTransportOptions { IoThreads = 1 }, loggers, meters);
        using var metrics = new MeterReader(meters.Create(new MeterOptions(EpollConnectionContextFactory.MeterName)));
        (Socket faultyPeer, ConnectionContext faulty) = await transport.ConnectAsync();
        (Socket healthyPeer, ConnectionContext healthy) = await transport.ConnectAsync();

        // A continuation that throws, run inline by the loop thread when the read completes (as a handler's would be).
        ValueTask<ReadResult> read = faulty.Transport.Input.ReadAsync();
        Assert.False(read.IsCompleted);
        ThrowWhenCompleted(read);
        await faultyPeer.SendAsync("x"u8.ToArray(), SocketFlags.None).WaitAsync(Timeouts.Read);

        // The faulty connection is aborted: its peer sees the close, and ConnectionClosed fires.
        Assert.Equal(0, await faultyPeer.ReceiveAsync(new byte[16], SocketFlags.None).WaitAsync(Timeouts.Read));
        await WhenCanceledAsync(faulty.ConnectionClosed);

        // The loop serves on: the other connection on the same thread still echoes, several times.
        for (int i = 0; i < 3; i++)
        {
            Task echo = EchoOnceAsync(healthy);
            await healthyPeer.SendAsync(Encoding.ASCII.GetBytes($"ping {i}\n"), SocketFlags.None).WaitAsync(Timeouts.Read);
            Assert.Equal($"ping {i}\n", await ReceiveAsync(healthyPeer, $"ping {i}\n".Length));
            await echo.WaitAsync(Timeouts.Read);
        }

        Assert.False(healthy.ConnectionClosed.IsCancellationRequested);
        // Logged once, as an error with the exception; counted once, in the transport and on the TinyServer meter.
        (LogLevel level, EventId id, Exception? exception) = Assert.Single(logs);
        Assert.Equal((LogLevel.Error, 40, "provoked"), (level, id.Id, exception?.Message));
        Assert.Equal(1, transport.Factory.Faults);
        Assert.Equal(1, metrics.Collect()["tinyserver.transport.faults"]);
    }

    [Theory]
    [InlineData(TransportKind.Epoll)]
    [InlineData(TransportKind.Sockets)]
    public async Task The_server_reports_the_transport_faults_on_its_own_meter_with_epoll_only(TransportKind transport)
    {
        await using TestServer server = await TestServer.StartAsync(new ServerOptions { Transport = transport });
        using var reader = new MeterReader(server.Metrics.Meter);
        await using (RawConnection connection = await RawConnection.OpenAsync(server.EndPoint))
        {
            await connection.SendAsync("QUIT\n");
            Assert.Equal(["BYE"], await connection.ReadLinesToEndAsync());
        }

        IReadOnlyDictionary<string, long> values = reader.Collect();
        long? expected = transport == TransportKind.Epoll ? 0 : null; // The sockets transport has no such counter.
        Assert.Equal(expected, values.TryGetValue("tinyserver.transport.faults", out long faults) ? faults : null);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ConnectionClosed_fires_when_the_connection_closes(bool abort)
    {
        await using var transport = await Transport.StartAsync(new EpollTransportOptions { IoThreads = 1 });
        (Socket peer, ConnectionContext connection) = await transport.ConnectAsync();
        CancellationToken closed = connection.ConnectionClosed;
        await Task.Delay(50); // Open and served: nothing fires by itself.
        Assert.False(closed.IsCancellationRequested);

        if (abort)
        {
            connection.Abort(new ConnectionAbortedException("test"));
        }
        else
        {
            await connection.DisposeAsync();
        }

        await WhenCanceledAsync(closed);
        Assert.True(connection.ConnectionClosed.IsCancellationRequested); // Asked for after the close: already fired.
        Assert.Equal(0, await peer.ReceiveAsync(new byte[16], SocketFlags.None).WaitAsync(Timeouts.Read));
    }

    [Fact]
    public async Task Events_reach_their_own_connection_after_the_loop_table_grew_and_reused_slots()
    {
        // One loop: 150 connections outgrow its table's first 64 slots, every other one closes (its slot is free,
        // and events may still be queued for it), and 50 new ones take those slots.
        await using var transport = await Transport.StartAsync(new EpollTransportOptions { IoThreads = 1 });
        var open = new List<(Socket Peer, ConnectionContext Connection)>();
        var closed = new List<Socket>();
        for (int i = 0; i < 150; i++)
        {
            open.Add(await transport.ConnectAsync());
        }

        for (int i = open.Count - 1; i >= 0; i -= 2)
        {
            (Socket peer, ConnectionContext connection) = open[i];
            await peer.SendAsync("unread\n"u8.ToArray(), SocketFlags.None).WaitAsync(Timeouts.Read); // An event queued for it.
            connection.Abort(new ConnectionAbortedException("closed by the test"));
            closed.Add(peer);
            open.RemoveAt(i);
        }

        for (int i = 0; i < 50; i++)
        {
            open.Add(await transport.ConnectAsync());
        }

        try
        {
            // Every connection still open gets its own bytes back, and only those.
            for (int i = 0; i < open.Count; i++)
            {
                (Socket peer, ConnectionContext connection) = open[i];
                Task echo = EchoOnceAsync(connection);
                string line = $"connection {i}\n";
                await peer.SendAsync(Encoding.ASCII.GetBytes(line), SocketFlags.None).WaitAsync(Timeouts.Read);
                Assert.Equal(line, await ReceiveAsync(peer, line.Length));
                await echo.WaitAsync(Timeouts.Read);
            }

            Assert.Equal(open.Count, transport.Factory.Open);
        }
        finally
        {
            foreach (Socket peer in closed.Concat(open.Select(o => o.Peer)))
            {
                peer.Dispose();
            }
        }
    }

    [Fact]
    public async Task The_connection_keeps_its_features_as_a_FeatureCollection_does()
    {
        await using var transport = await Transport.StartAsync(new EpollTransportOptions { IoThreads = 1 });
        (Socket peer, ConnectionContext connection) = await transport.ConnectAsync();
        using Socket _ = peer;
        IFeatureCollection features = connection.Features;
        var expected = new FeatureCollection();
        expected[typeof(IConnectionSocketFeature)] = connection; // The transport's own feature, as Kestrel's sockets set it.
        Assert.Same(connection, features.Get<IConnectionSocketFeature>());

        // More features than the connection keeps in place (Kestrel's, TLS's), replaced and removed in every position.
        Type[] keys = [typeof(IConnectionHeartbeatFeature), typeof(IConnectionCompleteFeature), typeof(IConnectionLifetimeNotificationFeature),
            typeof(IConnectionIdFeature), typeof(IConnectionItemsFeature), typeof(IConnectionTransportFeature), typeof(IConnectionUserFeature),
            typeof(IConnectionEndPointFeature), typeof(IStreamDirectionFeature), typeof(string)];
        var steps = new List<(Type Key, object? Value)>();
        for (int i = 0; i < keys.Length; i++)
        {
            steps.Add((keys[i], $"first {i}"));
        }

        for (int i = 0; i < keys.Length; i += 2)
        {
            steps.Add((keys[i], $"second {i}"));
            steps.Add((keys[(i + 3) % keys.Length], null));
        }

        steps.Add((keys[0], null));
        steps.Add((keys[0], null)); // Removing what is not there changes nothing.
        steps.Add((typeof(IConnectionSocketFeature), null));
        steps.Add((typeof(int), "after the removals"));
        foreach ((Type key, object? value) in steps)
        {
            int revision = features.Revision;
            int expectedRevision = expected.Revision;
            features[key] = value;
            expected[key] = value;
            Assert.Equal(expected.Revision != expectedRevision, features.Revision != revision); // Changed exactly when FeatureCollection's did.
            Assert.Same(expected[key], features[key]);
            Assert.Equal(expected.Select(f => f.Key.FullName).Order(), features.Select(f => f.Key.FullName).Order());
            foreach ((Type k, object v) in expected)
            {
                Assert.Same(v, features[k]);
            }
        }

        Assert.False(features.IsReadOnly);
        Assert.Null(features.Get<IConnectionSocketFeature>());
        Assert.Equal("after the removals", features[typeof(int)]);
    }

    [Fact]
    public async Task The_loop_never_waits_for_a_connection_whose_lock_another_thread_holds_while_nothing_of_it_waits()
    {
        // A TLS handshake thread runs at idle priority: put aside by the scheduler inside a connection's lock (its send
        // woke the peer), it may not run again for a long while. An edge for that connection while no read or flush of
        // it waits takes no lock, so the loop serves its other connections meanwhile; and the edge is not lost.
        await using var transport = await Transport.StartAsync(new EpollTransportOptions { IoThreads = 1 });
        (Socket heldPeer, ConnectionContext held) = await transport.ConnectAsync();
        (Socket otherPeer, ConnectionContext other) = await transport.ConnectAsync();
        object gate = typeof(EpollConnection).GetField("_reader", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(held)!;
        using var locked = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var holder = new Thread(() =>
        {
            lock (gate)
            {
                locked.Set();
                release.Wait(Timeouts.Process);
            }
        }) { IsBackground = true };
        holder.Start();
        try
        {
            Assert.True(locked.Wait(Timeouts.Read));
            await heldPeer.SendAsync("held\n"u8.ToArray(), SocketFlags.None).WaitAsync(Timeouts.Read);
            await Task.Delay(200); // The loop takes the held connection's edges first.
            for (int i = 0; i < 3; i++)
            {
                Task echo = EchoOnceAsync(other);
                await otherPeer.SendAsync(Encoding.ASCII.GetBytes($"other {i}\n"), SocketFlags.None).WaitAsync(Timeouts.Read);
                Assert.Equal($"other {i}\n", await ReceiveAsync(otherPeer, $"other {i}\n".Length));
                await echo;
            }
        }
        finally
        {
            release.Set();
            holder.Join();
        }

        Task heldEcho = EchoOnceAsync(held);
        Assert.Equal("held\n", await ReceiveAsync(heldPeer, "held\n".Length));
        await heldEcho;
    }

    [Fact]
    public async Task Complete_sends_what_was_written_and_not_flushed()
    {
        await using var transport = await Transport.StartAsync(new EpollTransportOptions { IoThreads = 1 });
        (Socket peer, ConnectionContext connection) = await transport.ConnectAsync();
        connection.Transport.Output.Write("BYE\n"u8);
        connection.Transport.Output.Complete(); // No flush before it.
        await connection.DisposeAsync();

        Assert.Equal("BYE\n", await ReceiveAsync(peer, 4));
        Assert.Equal(0, await peer.ReceiveAsync(new byte[16], SocketFlags.None).WaitAsync(Timeouts.Read));
    }

    [Fact]
    public async Task Complete_never_waits_for_a_full_socket_and_drops_what_does_not_fit()
    {
        await using var transport = await Transport.StartAsync(new EpollTransportOptions { IoThreads = 1 });
        (Socket peer, ConnectionContext connection) = await transport.ConnectAsync(smallBuffers: true);
        const int Written = 8 * 1024 * 1024; // Far more than the kernel buffers of both ends hold.
        PipeWriter output = connection.Transport.Output;
        output.GetSpan(Written)[..Written].Fill((byte)'x');
        output.Advance(Written);

        Task complete = Task.Run(() => output.Complete());
        await complete.WaitAsync(TimeSpan.FromSeconds(5)); // Returns with the peer reading nothing: it never waits.
        await connection.DisposeAsync();

        long received = 0;
        var buffer = new byte[64 * 1024];
        int n;
        while ((n = await peer.ReceiveAsync(buffer, SocketFlags.None).WaitAsync(Timeouts.Read)) > 0)
        {
            received += n;
        }

        Assert.InRange(received, 1, Written - 1); // What fit was sent, the rest dropped.
    }

    [Fact]
    public async Task Ten_thousand_requests_through_the_transport_allocate_nothing_on_its_event_thread()
    {
        await using var transport = await Transport.StartAsync(new EpollTransportOptions { IoThreads = 1 });
        (Socket peer, ConnectionContext connection) = await transport.ConnectAsync();
        const int Warmup = 2_000;
        const int Requests = 10_000;
        const int Windows = 3;
        // The echo loop runs on the event thread from its first completed read on: every read waits for the request,
        // and the loop thread completes it inline. So the thread's counter holds everything the transport allocates
        // per request: epoll_wait and the dispatch, the receive, the read's completion, the send, the flush.
        // Three windows of 10,000 requests: an allocation per request shows in every one of them, while a one-off
        // event of a busy test run (the suite runs in parallel) can show in one only. The assertion is on the
        // window with the fewest bytes, and every window must stay under a byte per request.
        Task<(long[] Allocated, bool OneThread)> echo = Task.Run(() => EchoAsync(connection, Warmup, Requests, Windows));

        byte[] request = "ECHO hello\n"u8.ToArray();
        var reply = new byte[request.Length];
        peer.ReceiveTimeout = (int)Timeouts.Read.TotalMilliseconds;
        await Task.Run(() =>
        {
            for (int i = 0; i < Warmup + (Requests * Windows); i++)
            {
                peer.Send(request);
                for (int got = 0; got < reply.Length;)
                {
                    int n = peer.Receive(reply, got, reply.Length - got, SocketFlags.None);
                    Assert.True(n > 0, $"request {i}: closed");
                    got += n;
                }
            }
        }).WaitAsync(TimeSpan.FromSeconds(90));

        Assert.Equal(request, reply);
        (long[] allocated, bool oneThread) = await echo.WaitAsync(Timeouts.Read);
        Assert.True(oneThread, "the echo loop left the event thread");
        string windows = string.Join(", ", allocated);
        Assert.True(allocated.Min() == 0, $"bytes allocated in each window of {Requests} requests: {windows}");
        Assert.True(allocated.Max() < Requests, $"bytes allocated in each window of {Requests} requests: {windows}");
    }

    /// <summary>
    /// Echoes <paramref name="warmup"/> + <paramref name="requests"/> × <paramref name="windows"/> reads; the bytes its
    /// thread allocated in each window of <paramref name="requests"/> after the warm-up.
    /// </summary>
    private static async Task<(long[] Allocated, bool OneThread)> EchoAsync(ConnectionContext connection, int warmup, int requests, int windows)
    {
        PipeReader input = connection.Transport.Input;
        PipeWriter output = connection.Transport.Output;
        long[] allocated = new long[windows];
        long before = 0;
        int thread = 0;
        bool oneThread = true;
        for (int i = 0; i < warmup + (requests * windows); i++)
        {
            ReadResult result = await input.ReadAsync().ConfigureAwait(false);
            if (i == warmup)
            {
                thread = Environment.CurrentManagedThreadId;
            }
            else if (i > warmup)
            {
                oneThread &= Environment.CurrentManagedThreadId == thread;
            }

            if (i >= warmup && (i - warmup) % requests == 0)
            {
                long now = GC.GetAllocatedBytesForCurrentThread();
                if (i > warmup)
                {
                    allocated[((i - warmup) / requests) - 1] = now - before;
                }

                before = now;
            }

            foreach (ReadOnlyMemory<byte> segment in result.Buffer)
            {
                output.Write(segment.Span);
            }

            input.AdvanceTo(result.Buffer.End);
            await output.FlushAsync().ConfigureAwait(false);
        }

        allocated[windows - 1] = GC.GetAllocatedBytesForCurrentThread() - before;
        return (allocated, oneThread && Environment.CurrentManagedThreadId == thread);
    }

    /// <summary>
    /// Attaches a continuation that throws to <paramref name="read"/>, without a scheduling context: whoever completes
    /// the read runs it inline, and it throws there.
    /// </summary>
    private static void ThrowWhenCompleted(ValueTask<ReadResult> read) =>
        read.ConfigureAwait(false).GetAwaiter().OnCompleted(() => throw new InvalidOperationException("provoked"));

    private static async Task EchoOnceAsync(ConnectionContext connection)
    {
        ReadResult result = await connection.Transport.Input.ReadAsync().AsTask().WaitAsync(Timeouts.Read);
        byte[] bytes = result.Buffer.ToArray();
        connection.Transport.Input.AdvanceTo(result.Buffer.End);
        await connection.Transport.Output.WriteAsync(bytes).AsTask().WaitAsync(Timeouts.Read);
    }

    private static async Task<string> ReceiveAsync(Socket peer, int length)
    {
        var buffer = new byte[length];
        for (int got = 0; got < length;)
        {
            int n = await peer.ReceiveAsync(buffer.AsMemory(got), SocketFlags.None).AsTask().WaitAsync(Timeouts.Read);
            Assert.True(n > 0, $"closed after {got} of {length} bytes");
            got += n;
        }

        return Encoding.ASCII.GetString(buffer);
    }

    private static Task WhenCanceledAsync(CancellationToken token)
    {
        var fired = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        token.Register(() => fired.TrySetResult());
        return fired.Task.WaitAsync(Timeouts.Read);
    }

    /// <summary>The transport's factory, a loopback listener in front of it, and the peers connected through it.</summary>
    private sealed class Transport : IAsyncDisposable
    {
        private readonly Socket _listener;
        private readonly List<(Socket Peer, ConnectionContext Connection)> _pairs = [];

        private Transport(Socket listener, EpollConnectionContextFactory factory)
        {
            _listener = listener;
            Factory = factory;
        }

        public EpollConnectionContextFactory Factory { get; }

        public static Task<Transport> StartAsync(EpollTransportOptions options, ILoggerFactory? loggers = null, IMeterFactory? meters = null)
        {
            var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            listener.Listen(8);
            var factory = new EpollConnectionContextFactory(options, loggers ?? Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance, meters);
            return Task.FromResult(new Transport(listener, factory));
        }

        /// <param name="smallBuffers">Small kernel buffers toward the peer, so that a few kilobytes fill the socket.</param>
        public async Task<(Socket Peer, ConnectionContext Connection)> ConnectAsync(bool smallBuffers = false)
        {
            var peer = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            if (smallBuffers)
            {
                peer.ReceiveBufferSize = 4096;
            }

            await peer.ConnectAsync(_listener.LocalEndPoint!).WaitAsync(Timeouts.Read);
            Socket accepted = await _listener.AcceptAsync().WaitAsync(Timeouts.Read);
            accepted.NoDelay = true;
            if (smallBuffers)
            {
                accepted.SendBufferSize = 4096;
            }

            ConnectionContext connection = Factory.Create(accepted);
            _pairs.Add((peer, connection));
            return (peer, connection);
        }

        public async ValueTask DisposeAsync()
        {
            foreach ((Socket peer, ConnectionContext connection) in _pairs)
            {
                await connection.DisposeAsync();
                peer.Dispose();
            }

            Factory.Dispose();
            _listener.Dispose();
        }
    }

    private sealed class ListProvider(ConcurrentQueue<(LogLevel, EventId, Exception?)> entries) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new ListLogger(entries);

        public void Dispose()
        {
        }

        private sealed class ListLogger(ConcurrentQueue<(LogLevel, EventId, Exception?)> entries) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                entries.Enqueue((logLevel, eventId, exception));
        }
    }
}
