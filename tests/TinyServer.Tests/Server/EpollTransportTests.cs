using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Text;
using TinyServer.Server;
using TinyServer.Transport.Epoll;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Server;

/// <summary>
/// The epoll transport (<see cref="EpollConnection"/>, <see cref="EpollLoops"/>) under the conditions an edge-triggered
/// design gets wrong: wake-ups consumed while nobody waits, a peer that stops reading, buffers that fill and grow,
/// cancellation racing completion, and connections that come and go by the thousand. Real sockets throughout.
/// </summary>
[Trait("Tier", "load")]
public class EpollTransportTests
{
    private const string Banner = "WELCOME, I'm TinyServer not pressure\n";

    private static Task<TestServer> StartAsync(ServerOptions? options = null) =>
        TestServer.StartAsync((options ?? new ServerOptions()) with { Transport = TransportKind.Epoll });

    private static string Echo(int length, char fill) => "ECHO " + new string(fill, length - 5);

    [Theory]
    [InlineData(6000, 4096)] // The read buffer's limit (6002) is not a size the array pool hands out.
    [InlineData(16384, 20000)]
    public async Task A_read_buffer_limit_that_is_not_a_power_of_two_never_fakes_the_end_of_input(int maxLineLength, int maxReadBuffer)
    {
        // The first line fills the buffer to its limit with the second one's start behind it: the next receive has no
        // room left in the limit although the rented array has; that must wait for the handler, not read as the end.
        await using TestServer server = await StartAsync(new ServerOptions { MaxLineLength = maxLineLength, MaxReadBuffer = maxReadBuffer });
        await using RawConnection connection = await RawConnection.OpenAsync(server.EndPoint);
        int limit = Math.Max(maxReadBuffer, maxLineLength + 2);
        string first = Echo(Math.Min(limit - 1000, maxLineLength), 'a');
        string second = Echo(6000, 'b');
        await connection.SendAsync(first + "\n" + second + "\n");
        Assert.Equal(first, await connection.ReadLineAsync());
        Assert.Equal(second, await connection.ReadLineAsync());
        await connection.SendAsync("QUIT\n");
        Assert.Equal(["BYE"], await connection.ReadLinesToEndAsync());
    }

    [Fact]
    public async Task A_megabyte_line_between_other_lines_at_the_largest_line_limit()
    {
        int max = ServerOptions.MaxLineLengthLimit;
        await using TestServer server = await StartAsync(new ServerOptions { MaxLineLength = max });
        await using RawConnection connection = await RawConnection.OpenAsync(server.EndPoint);
        string[] lines = ["ECHO first", Echo(max - 700, 'm'), Echo(3000, 'n'), Echo(max, 'o'), "ECHO last"];
        Task send = connection.SendAsync(string.Concat(lines.Select(l => l + "\r\n")));
        foreach (string line in lines)
        {
            Assert.Equal(line, await connection.ReadLineAsync());
        }

        await send;
    }

    [Fact]
    public async Task Lines_at_the_block_size_boundary_are_answered()
    {
        await using TestServer server = await StartAsync();
        await using RawConnection connection = await RawConnection.OpenAsync(server.EndPoint);
        foreach (int length in new[] { 4094, 4095, 4096, 4097, 8190, 8191, 8192, 8193 })
        {
            // The line with its LF (and with CRLF) ends just before, at and after a 4096-byte block.
            string line = Echo(length - 1, 'k');
            await connection.SendAsync(line + "\n" + line + "\r\n" + "ECHO tail\n");
            Assert.Equal(line, await connection.ReadLineAsync());
            Assert.Equal(line, await connection.ReadLineAsync());
            Assert.Equal("ECHO tail", await connection.ReadLineAsync());
        }
    }

    [Fact]
    public async Task Pipelined_requests_split_at_every_byte_boundary_are_answered_in_order()
    {
        await using TestServer server = await StartAsync();
        await using RawConnection connection = await RawConnection.OpenAsync(server.EndPoint);
        byte[] requests = Encoding.ASCII.GetBytes("ECHO one\r\nHELP\nECHO two three\nNOPE\r\n");
        string[] replies = ["ECHO one", "HELP TIME | ECHO <text> | HELP | QUIT", "ECHO two three", "ERROR UNKNOWN_COMMAND"];
        for (int split = 1; split < requests.Length; split++)
        {
            await connection.SendAsync(requests[..split]);
            await Task.Delay(2); // The server sees the first part alone, most of the time.
            await connection.SendAsync(requests[split..]);
            foreach (string reply in replies)
            {
                Assert.Equal(reply, await connection.ReadLineAsync());
            }
        }
    }

    [Fact]
    public async Task Data_and_FIN_in_one_segment_are_both_seen()
    {
        await using TestServer server = await StartAsync();
        var clients = new List<Task<string>>();
        for (int i = 0; i < 50; i++)
        {
            int n = i;
            clients.Add(Task.Run(async () =>
            {
                using Socket socket = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await socket.ConnectAsync(server.EndPoint).WaitAsync(Timeouts.Read);
                if (n % 2 == 0)
                {
                    // Corked, the FIN rides on the data's segment: one edge says readable and closed.
                    socket.SetRawSocketOption(6, 3, BitConverter.GetBytes(1)); // IPPROTO_TCP, TCP_CORK
                }

                await socket.SendAsync(Encoding.ASCII.GetBytes($"ECHO {n}\nECHO partial {n}"), SocketFlags.None).WaitAsync(Timeouts.Read);
                socket.Shutdown(SocketShutdown.Send);
                return await ReadToEndAsync(socket);
            }));
        }

        for (int i = 0; i < clients.Count; i++)
        {
            Assert.Equal($"{Banner}ECHO {i}\nECHO partial {i}\n", await clients[i].WaitAsync(Timeouts.Read));
        }

        await server.WaitForAllClosedAsync(50);
    }

    [Fact]
    public async Task Byte_by_byte_input_then_a_half_close_is_answered_completely()
    {
        await using TestServer server = await StartAsync();
        await using RawConnection connection = await RawConnection.OpenAsync(server.EndPoint);
        await connection.SendByteByByteAsync(Encoding.ASCII.GetBytes("ECHO a\nECHO bb\r\nHELP\nECHO end"));
        connection.ShutdownSend();
        Assert.Equal(["ECHO a", "ECHO bb", "HELP TIME | ECHO <text> | HELP | QUIT", "ECHO end"], await connection.ReadLinesToEndAsync());
    }

    [Fact]
    public async Task Fifty_megabytes_of_replies_to_a_slow_reader_arrive_complete_and_in_order()
    {
        // Each reply equals its request, so the reply stream must equal the request stream byte for byte. The reader
        // pauses often enough that the server's sends hit a full socket and must wait for EPOLLOUT many times.
        const int LineLength = 1024;
        const int Lines = 50 * 1024;
        await using TestServer server = await StartAsync();
        using Socket socket = await ConnectAsync(server.EndPoint);
        Assert.Equal(Banner, Encoding.ASCII.GetString(await ReceiveExactlyAsync(socket, Banner.Length)));

        Task sending = Task.Run(async () =>
        {
            byte[] chunk = new byte[64 * LineLength];
            for (int first = 0; first < Lines; first += 64)
            {
                for (int j = 0; j < 64; j++)
                {
                    WriteRequest(chunk.AsSpan(j * LineLength, LineLength), first + j);
                }

                await SendAllAsync(socket, chunk);
            }
        });

        byte[] expected = new byte[LineLength];
        byte[] buffer = new byte[256 * 1024];
        long total = (long)Lines * LineLength;
        long received = 0;
        long nextPause = 0;
        while (received < total)
        {
            int n = await socket.ReceiveAsync(buffer, SocketFlags.None).WaitAsync(Timeouts.Read);
            Assert.True(n > 0, $"the server closed after {received} of {total} bytes");
            for (int k = 0; k < n; k++)
            {
                long at = received + k;
                if (at % LineLength == 0)
                {
                    WriteRequest(expected, (int)(at / LineLength));
                }

                if (buffer[k] != expected[at % LineLength])
                {
                    Assert.Fail($"byte {at} (line {at / LineLength}) differs");
                }
            }

            received += n;
            if (received >= nextPause)
            {
                nextPause += 2 * 1024 * 1024;
                await Task.Delay(30);
            }
        }

        await sending.WaitAsync(Timeouts.Read);
        Assert.Equal(0, socket.Available);
        Assert.Empty(server.Warnings);
    }

    [Fact]
    public async Task Two_thousand_connections_come_and_go_while_others_talk_and_nothing_leaks()
    {
        await using TestServer server = await StartAsync();
        int descriptorsBefore = OpenDescriptors();
        using var stop = new CancellationTokenSource();
        var talkers = Enumerable.Range(0, 4).Select(t => Task.Run(async () =>
        {
            await using RawConnection talker = await RawConnection.OpenAsync(server.EndPoint);
            int exchanges = 0;
            while (!stop.IsCancellationRequested)
            {
                await talker.SendAsync($"ECHO talker {t} says {exchanges}\n");
                Assert.Equal($"ECHO talker {t} says {exchanges}", await talker.ReadLineAsync());
                exchanges++;
            }

            return exchanges;
        })).ToList();

        const int Connections = 2000;
        var churn = System.Diagnostics.Stopwatch.StartNew();
        for (int batch = 0; batch < Connections; batch += 50)
        {
            var clients = new List<Task>();
            for (int i = batch; i < batch + 50; i++)
            {
                int n = i;
                clients.Add(Task.Run(async () =>
                {
                    using Socket socket = await ConnectAsync(server.EndPoint);
                    switch (n % 4)
                    {
                        case 0: // Polite: asks, reads, quits.
                            await SendAllAsync(socket, Encoding.ASCII.GetBytes($"ECHO {n}\nQUIT\n"));
                            Assert.Equal($"{Banner}ECHO {n}\nBYE\n", await ReadToEndAsync(socket));
                            break;
                        case 1: // Asks and resets without reading: the descriptor dies with events pending.
                            await SendAllAsync(socket, Encoding.ASCII.GetBytes($"ECHO {n}\nTIME\n"));
                            socket.LingerState = new LingerOption(true, 0);
                            break;
                        case 2: // Connects and leaves at once.
                            break;
                        default: // Half-closes mid-line.
                            await SendAllAsync(socket, Encoding.ASCII.GetBytes($"ECHO {n}\nECHO half"));
                            socket.Shutdown(SocketShutdown.Send);
                            Assert.Equal($"{Banner}ECHO {n}\nECHO half\n", await ReadToEndAsync(socket));
                            break;
                    }
                }));
            }

            await Task.WhenAll(clients).WaitAsync(Timeouts.Read);
        }

        churn.Stop();
        await stop.CancelAsync();
        int[] exchanged = await Task.WhenAll(talkers).WaitAsync(Timeouts.Read);
        Assert.All(exchanged, e => Assert.True(e > 0));
        await server.WaitForAllClosedAsync(Connections + 4);
        Assert.True(churn.Elapsed < TimeSpan.FromSeconds(20), $"{Connections} connections took {churn.Elapsed}");

        // Closed connections give their descriptors back (a few may be the runtime's own, opened meanwhile).
        using var deadline = new CancellationTokenSource(Timeouts.Read);
        while (OpenDescriptors() > descriptorsBefore + 8)
        {
            await Task.Delay(50, deadline.Token);
        }

        Assert.Empty(server.Warnings);
    }

    [Fact]
    public async Task A_stream_on_one_connection_does_not_starve_another_on_the_same_loop()
    {
        // One event thread: a client that keeps the server's receive queue full must not keep the thread from the
        // other connections on it until its stream ends.
        await using TestServer server = await StartAsync(new ServerOptions { IoThreads = 1 });
        using Socket streamer = await ConnectAsync(server.EndPoint);
        await using RawConnection other = await RawConnection.OpenAsync(server.EndPoint);
        Assert.Equal(Banner, Encoding.ASCII.GetString(await ReceiveExactlyAsync(streamer, Banner.Length)));

        using var stop = new CancellationTokenSource();
        // Cheap to send, short replies: the server receives 4 KiB at a time and would always find more waiting.
        byte[] requests = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("NOPE " + new string('x', 1018) + "\n", 64)));
        Task streaming = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                await SendAllAsync(streamer, requests);
            }
        });
        Task draining = Task.Run(async () =>
        {
            byte[] sink = new byte[256 * 1024];
            while (await streamer.ReceiveAsync(sink, SocketFlags.None).WaitAsync(Timeouts.Read) > 0)
            {
            }
        });

        await Task.Delay(200);
        var slowest = TimeSpan.Zero;
        for (int i = 0; i < 10; i++)
        {
            var exchange = System.Diagnostics.Stopwatch.StartNew();
            await other.SendAsync($"ECHO {i}\n");
            Assert.Equal($"ECHO {i}", await other.ReadLineAsync());
            slowest = exchange.Elapsed > slowest ? exchange.Elapsed : slowest;
        }

        await stop.CancelAsync();
        await streaming.WaitAsync(Timeouts.Read);
        streamer.Shutdown(SocketShutdown.Send);
        await draining.WaitAsync(Timeouts.Read);
        Assert.True(slowest < TimeSpan.FromSeconds(2), $"the slowest exchange took {slowest}");
    }

    [Fact]
    public async Task The_idle_timeout_striking_as_a_line_arrives_ends_each_connection_once()
    {
        // The heartbeat thread cancels the pending read while the loop thread completes it with the line.
        await using TestServer server = await StartAsync(new ServerOptions { IdleTimeoutSeconds = 1 });
        var clients = Enumerable.Range(0, 40).Select(i => Task.Run(async () =>
        {
            await using RawConnection connection = await RawConnection.OpenAsync(server.EndPoint);
            await Task.Delay(700 + (i * 15));
            await connection.SendAsync($"ECHO {i}\n");
            return (i, await connection.ReadLinesToEndAsync());
        })).ToList();

        foreach ((int i, List<string> lines) in await Task.WhenAll(clients).WaitAsync(Timeouts.Read))
        {
            // Answered, then timed out a second later; or timed out just before the line, which is then discarded.
            Assert.True(
                lines.SequenceEqual([$"ECHO {i}", "ERROR IDLE_TIMEOUT"]) || lines.SequenceEqual(["ERROR IDLE_TIMEOUT"]),
                string.Join(" | ", lines));
        }

        await server.WaitForAllClosedAsync(40);
        Assert.Empty(server.Warnings);
    }

    [Fact]
    public async Task Cancel_pending_read_racing_arriving_data_completes_each_read_exactly_once()
    {
        await using EpollPair pair = await EpollPair.CreateAsync();
        PipeReader input = pair.Connection.Transport.Input;
        var race = RaceClock.Start();
        for (int i = 1; i <= 1000; i++)
        {
            race.Check($"byte {i} of 1000");
            ValueTask<ReadResult> read = input.ReadAsync();
            // The loop thread completes the read with the byte while another thread cancels it: one of them wins.
            Task cancel = Task.Run(input.CancelPendingRead);
            await pair.Peer.SendAsync(new byte[] { (byte)i }, SocketFlags.None).WaitAsync(Timeouts.Read);
            await cancel.WaitAsync(Timeouts.Read);
            ReadResult result = await WithinAsync(read, $"byte {i}");

            // A cancellation that won ends one read; one that lost cancels the next one (and at most that): the byte
            // comes with the third read at the latest.
            for (int reads = 1; result.Buffer.IsEmpty; reads++)
            {
                Assert.True(result.IsCanceled && !result.IsCompleted, $"byte {i}: read {reads} ended empty but not canceled (completed: {result.IsCompleted})");
                Assert.True(reads < 3, $"byte {i}: {reads} canceled reads in a row");
                input.AdvanceTo(result.Buffer.End);
                result = await WithinAsync(input.ReadAsync(), $"byte {i}, read {reads + 1}");
            }

            AssertTheByte(i, result); // Neither lost nor given twice.
            input.AdvanceTo(result.Buffer.End);
        }
    }

    [Fact]
    public async Task A_canceled_token_racing_arriving_data_never_cancels_a_later_read()
    {
        await using EpollPair pair = await EpollPair.CreateAsync();
        PipeReader input = pair.Connection.Transport.Input;
        var race = RaceClock.Start();
        for (int i = 0; i < 1000; i++)
        {
            race.Check($"round {i} of 1000");
            using var token = new CancellationTokenSource();
            Task send = pair.Peer.SendAsync(new byte[] { (byte)'d' }, SocketFlags.None);
            ReadResult first;
            try
            {
                first = await WithinAsync(input.ReadAsync(token.Token), $"round {i}, first read");
            }
            catch (OperationCanceledException)
            {
                throw new InvalidOperationException($"round {i}: the read was canceled before its token was");
            }

            await send.WaitAsync(Timeouts.Read);
            Assert.Equal("d", Encoding.ASCII.GetString(first.Buffer.ToArray()));
            input.AdvanceTo(first.Buffer.End);

            // The token belongs to the finished read: canceling it now must leave the next read alone.
            ValueTask<ReadResult> second = input.ReadAsync();
            await token.CancelAsync();
            await pair.Peer.SendAsync(new byte[] { (byte)'e' }, SocketFlags.None).WaitAsync(Timeouts.Read);
            ReadResult next;
            try
            {
                next = await WithinAsync(second, $"round {i}, second read");
            }
            catch (OperationCanceledException)
            {
                throw new InvalidOperationException($"round {i}: the finished read's token canceled the next read");
            }

            Assert.Equal(("e", false, false), (Encoding.ASCII.GetString(next.Buffer.ToArray()), next.IsCanceled, next.IsCompleted));
            input.AdvanceTo(next.Buffer.End);
        }
    }

    [Fact]
    public async Task A_token_canceled_while_data_arrives_ends_the_read_once()
    {
        await using EpollPair pair = await EpollPair.CreateAsync();
        PipeReader input = pair.Connection.Transport.Input;
        var race = RaceClock.Start();
        for (int i = 1; i <= 1000; i++)
        {
            race.Check($"byte {i} of 1000");
            using var token = new CancellationTokenSource();
            ValueTask<ReadResult> read = input.ReadAsync(token.Token);
            Task cancel = Task.Run(token.Cancel);
            await pair.Peer.SendAsync(new byte[] { (byte)i }, SocketFlags.None).WaitAsync(Timeouts.Read);
            await cancel.WaitAsync(Timeouts.Read);
            ReadResult result;
            try
            {
                result = await WithinAsync(read, $"byte {i}");
            }
            catch (OperationCanceledException canceled)
            {
                // The token won: the read ends with it, and the byte waits for the next read, which gets it alone.
                Assert.Equal(token.Token, canceled.CancellationToken);
                result = await WithinAsync(input.ReadAsync(), $"byte {i}, the read after the token's");
            }

            AssertTheByte(i, result);
            Assert.False(result.IsCanceled, $"byte {i}: came with a canceled result; the token cancels by failing the read");
            input.AdvanceTo(result.Buffer.End);
        }
    }

    [Fact]
    public async Task Cancel_pending_flush_racing_the_peer_draining_loses_and_repeats_nothing()
    {
        await using EpollPair pair = await EpollPair.CreateAsync(smallBuffers: true);
        PipeWriter output = pair.Connection.Transport.Output;
        var race = RaceClock.Start();
        long written = 0;
        long received = 0;
        byte[] sink = new byte[64 * 1024];
        for (int i = 0; i < 100; i++)
        {
            race.Check($"round {i} of 100");
            ValueTask<FlushResult> flush;
            int chunks = 0;
            do
            {
                // Until the socket is full and the flush has to wait for EPOLLOUT (a few chunks with 4 KiB buffers).
                Assert.True(++chunks <= 64, $"round {i}: {chunks - 1} chunks of 16 KiB flushed and none had to wait for the peer");
                Span<byte> span = output.GetSpan(16 * 1024)[..(16 * 1024)];
                for (int k = 0; k < span.Length; k++)
                {
                    span[k] = (byte)((written + k) % 251);
                }

                output.Advance(span.Length);
                written += span.Length;
                flush = output.FlushAsync();
            }
            while (flush.IsCompleted);

            // Reading frees space, so the loop thread resumes the flush on EPOLLOUT while another thread cancels it.
            Task cancel = Task.Run(output.CancelPendingFlush);
            received += await ReceiveCheckedAsync(pair.Peer, sink, received);
            await cancel.WaitAsync(Timeouts.Read);
            FlushResult raced = await flush.AsTask().WaitAsync(Timeouts.Read);
            Assert.False(raced.IsCompleted, $"round {i}: the flush reported the connection completed");
            if (raced.IsCanceled)
            {
                flush = output.FlushAsync(); // The replies stay buffered: flush again.
            }

            while (received < written)
            {
                received += await ReceiveCheckedAsync(pair.Peer, sink, received); // Each bounded, and at least one byte.
            }

            FlushResult done = await flush.AsTask().WaitAsync(Timeouts.Read);
            Assert.False(done.IsCompleted, $"round {i}: the flush reported the connection completed");
            Assert.Equal(0, output.UnflushedBytes);
        }

        // Nothing more than was written: a repeated chunk would be waiting here.
        await Task.Delay(50);
        Assert.Equal((written, 0), (received, pair.Peer.Available));
    }

    [Fact]
    public async Task Abort_racing_a_receive_ends_the_reader_and_the_connection_cleanly()
    {
        var race = RaceClock.Start();
        for (int i = 0; i < 100; i++)
        {
            race.Check($"round {i} of 100");
            await using EpollPair pair = await EpollPair.CreateAsync();
            PipeReader input = pair.Connection.Transport.Input;
            byte[] chunk = new byte[8192];
            Task<SocketError> flood = Task.Run(async () =>
            {
                try
                {
                    while (true)
                    {
                        await pair.Peer.SendAsync(chunk, SocketFlags.None).WaitAsync(Timeouts.Read);
                    }
                }
                catch (SocketException e)
                {
                    return e.SocketErrorCode; // Reset by the abort.
                }
                catch (TimeoutException)
                {
                    return SocketError.TimedOut; // A send blocked: the other end still holds the connection open.
                }
            });
            var reason = new Microsoft.AspNetCore.Connections.ConnectionAbortedException("test");
            Task abort = Task.Run(async () =>
            {
                await Task.Delay(i % 5);
                pair.Connection.Abort(reason);
            });

            // The reader gets data until the abort, then the abort's reason: a read begun after Abort returned must fail.
            var reading = System.Diagnostics.Stopwatch.StartNew();
            Exception? ended = null;
            for (int reads = 1; ended is null; reads++)
            {
                Assert.True(reading.Elapsed < Timeouts.Read, $"round {i}: {reads} reads in {reading.Elapsed} and the reader has not ended; Abort has {(abort.IsCompleted ? "" : "not ")}returned");
                bool aborted = abort.IsCompleted;
                try
                {
                    ReadResult result = await WithinAsync(input.ReadAsync(), $"round {i}, read {reads}");
                    Assert.False(aborted, $"round {i}: read {reads}, begun after the abort, returned {result.Buffer.Length} bytes (completed: {result.IsCompleted})");
                    Assert.False(result.IsCompleted || result.IsCanceled, $"round {i}: read {reads} ended the input (completed: {result.IsCompleted}, canceled: {result.IsCanceled}) instead of the abort");
                    input.AdvanceTo(result.Buffer.End);
                }
                catch (Microsoft.AspNetCore.Connections.ConnectionAbortedException e)
                {
                    ended = e;
                }
            }

            Assert.Same(reason, ended);
            await abort.WaitAsync(Timeouts.Read);

            // The writer knows the connection is gone, and so does the peer: its sends fail instead of filling a buffer.
            FlushResult flushed = await pair.Connection.Transport.Output.FlushAsync().AsTask().WaitAsync(Timeouts.Read);
            Assert.True(flushed.IsCompleted, $"round {i}: a flush after the abort did not report the connection completed");
            Assert.Contains(await flood.WaitAsync(Timeouts.Read), new[] { SocketError.ConnectionReset, SocketError.Shutdown });
            await pair.Connection.DisposeAsync();
        }
    }

    /// <summary>
    /// A race test's whole run, checked on every round: a regression that makes the race loop forever (a read that
    /// never blocks, a flush that never waits) fails with where it was instead of hanging the suite.
    /// </summary>
    private sealed class RaceClock
    {
        private static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);
        private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();

        public static RaceClock Start() => new();

        public void Check(string where) => Assert.True(_clock.Elapsed < Limit, $"{where} after {_clock.Elapsed}: the race should take a second or two");
    }

    /// <summary>The read returned byte <paramref name="i"/> (its low 8 bits), alone.</summary>
    private static void AssertTheByte(int i, ReadResult result)
    {
        byte[] bytes = result.Buffer.ToArray();
        Assert.True(
            bytes is [var only] && only == (byte)i && !result.IsCompleted,
            $"byte {i}: the read returned [{Convert.ToHexString(bytes)}], expected [{(byte)i:X2}] (completed: {result.IsCompleted})");
    }

    /// <summary>A read bounded by <see cref="Timeouts.Read"/>, which says what it was when it times out.</summary>
    private static async Task<ReadResult> WithinAsync(ValueTask<ReadResult> read, string what)
    {
        try
        {
            return await read.AsTask().WaitAsync(Timeouts.Read);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{what}: the read did not complete within {Timeouts.Read}", e);
        }
    }

    private static async Task<int> ReceiveCheckedAsync(Socket socket, byte[] sink, long offset)
    {
        int n = await socket.ReceiveAsync(sink, SocketFlags.None).WaitAsync(Timeouts.Read);
        Assert.True(n > 0, $"closed after {offset} bytes");
        for (int k = 0; k < n; k++)
        {
            Assert.Equal((byte)((offset + k) % 251), sink[k]);
        }

        return n;
    }

    private static void WriteRequest(Span<byte> line, int index)
    {
        line.Fill((byte)('a' + (index % 26)));
        "ECHO "u8.CopyTo(line);
        Encoding.ASCII.GetBytes(index.ToString("D9", System.Globalization.CultureInfo.InvariantCulture), line[5..]);
        line[^1] = (byte)'\n';
    }

    private static int OpenDescriptors() => Directory.GetFiles("/proc/self/fd").Length;

    private static async Task<Socket> ConnectAsync(IPEndPoint endPoint)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(endPoint).WaitAsync(Timeouts.Read);
        return socket;
    }

    private static async Task SendAllAsync(Socket socket, byte[] bytes)
    {
        for (int sent = 0; sent < bytes.Length;)
        {
            sent += await socket.SendAsync(bytes.AsMemory(sent), SocketFlags.None).AsTask().WaitAsync(Timeouts.Read);
        }
    }

    private static async Task<byte[]> ReceiveExactlyAsync(Socket socket, int count)
    {
        byte[] bytes = new byte[count];
        for (int received = 0; received < count;)
        {
            int n = await socket.ReceiveAsync(bytes.AsMemory(received), SocketFlags.None).AsTask().WaitAsync(Timeouts.Read);
            Assert.True(n > 0, $"the server closed after {received} of {count} bytes");
            received += n;
        }

        return bytes;
    }

    private static async Task<string> ReadToEndAsync(Socket socket)
    {
        var text = new StringBuilder();
        byte[] buffer = new byte[4096];
        while (true)
        {
            int n = await socket.ReceiveAsync(buffer, SocketFlags.None).WaitAsync(Timeouts.Read);
            if (n == 0)
            {
                return text.ToString();
            }

            text.Append(Encoding.ASCII.GetString(buffer, 0, n));
        }
    }
}

/// <summary>One <see cref="EpollConnection"/> on its own event loop, and the peer socket at the other end.</summary>
internal sealed class EpollPair : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly EpollLoops _loops;

    private EpollPair(Socket listener, EpollLoops loops, Socket peer, EpollConnection connection)
    {
        _listener = listener;
        _loops = loops;
        Peer = peer;
        Connection = connection;
    }

    public Socket Peer { get; }

    public EpollConnection Connection { get; }

    /// <param name="smallBuffers">Small kernel buffers both ways, so that a few kilobytes fill the socket.</param>
    public static async Task<EpollPair> CreateAsync(bool smallBuffers = false)
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var peer = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        if (smallBuffers)
        {
            peer.ReceiveBufferSize = 4096;
        }

        await peer.ConnectAsync(listener.LocalEndPoint!).WaitAsync(Timeouts.Read);
        Socket accepted = await listener.AcceptAsync().WaitAsync(Timeouts.Read);
        accepted.NoDelay = true;
        if (smallBuffers)
        {
            accepted.SendBufferSize = 4096;
        }

        var loops = new EpollLoops(1);
        var connection = new EpollConnection(accepted, 64 * 1024);
        loops.Add(connection);
        return new EpollPair(listener, loops, peer, connection);
    }

    public async ValueTask DisposeAsync()
    {
        await Connection.DisposeAsync();
        Peer.Dispose();
        _loops.Dispose();
        _listener.Dispose();
    }
}
