using System.IO.Pipelines;
using TinyServer.Server;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Hardening;

/// <summary>
/// The idle clock of <see cref="LineConnectionHandler"/> over in-memory pipes, with the clock and Kestrel's heartbeat
/// in the test's hands (nothing sleeps): the output pipe pauses at 1,024 unread bytes, as a socket whose peer does
/// not read would.
/// </summary>
[Trait("Tier", "unit")]
public sealed class IdleTimeoutHandlerTests : IAsyncDisposable
{
    private const string Banner = "WELCOME, I'm TinyServer not pressure\n";
    private const string Goodbye = "ERROR IDLE_TIMEOUT\n";

    private readonly PipeConnection _connection = new(fromServer: new PipeOptions(pauseWriterThreshold: 1024, resumeWriterThreshold: 512, useSynchronizationContext: false));

    [Fact]
    public async Task A_goodbye_that_waits_a_whole_timeout_for_a_peer_that_does_not_read_is_cut()
    {
        Task serving = _connection.Start(new ServerOptions { IdleTimeoutSeconds = 1 });
        // Ten replies of 98 bytes leave the unread output just below the pause threshold: the goodbye crosses it.
        string lines = string.Concat(Enumerable.Repeat("ECHO " + new string('g', 92) + "\n", 10));
        await _connection.SendAsync(lines);
        Assert.Equal(Banner + lines, await _connection.PeekAsync(Banner.Length + lines.Length));

        _connection.Time.Advance(TimeSpan.FromMilliseconds(999));
        _connection.Beat(); // Not a whole timeout yet.
        Assert.Equal(0, _connection.ReadsCanceled);

        _connection.Time.Advance(TimeSpan.FromMilliseconds(1));
        _connection.Beat(); // A whole timeout without a line: the goodbye, whose flush waits for the peer.
        Assert.Equal(1, _connection.ReadsCanceled);
        Assert.Equal(Banner + lines + Goodbye, await _connection.PeekAsync(Banner.Length + lines.Length + Goodbye.Length));
        Assert.False(serving.IsCompleted);

        _connection.Time.Advance(TimeSpan.FromMilliseconds(999));
        _connection.Beat();
        Assert.False(_connection.Aborted);
        _connection.Time.Advance(TimeSpan.FromMilliseconds(1));
        _connection.Beat(); // The goodbye waited a whole timeout too: the connection is cut.
        await serving.WaitAsync(Timeouts.Read);
        Assert.True(_connection.Aborted);
    }

    [Fact]
    public async Task A_flush_that_waited_for_the_peer_to_read_restarts_the_clock()
    {
        Task serving = _connection.Start(new ServerOptions { IdleTimeoutSeconds = 2 });
        Assert.Equal(Banner, await _connection.TakeAsync(Banner.Length));
        string lines = string.Concat(Enumerable.Repeat("ECHO " + new string('w', 194) + "\n", 10)); // 2,000 bytes: the flush waits.
        await _connection.SendAsync(lines);
        Assert.Equal(lines, await _connection.PeekAsync(lines.Length));
        int reads = _connection.Reads; // The handler waits in its flush.

        _connection.Time.Advance(TimeSpan.FromMilliseconds(1500));
        Assert.Equal(lines, await _connection.TakeAsync(lines.Length)); // The peer reads: the flush completes.
        await _connection.WaitForReadsAsync(reads + 1); // The handler is done with the flush and reads again.
        _connection.Time.Advance(TimeSpan.FromMilliseconds(1000));
        _connection.Beat(); // 2.5 s after the last line, 1 s after the peer read: not idle.
        Assert.Equal(0, _connection.ReadsCanceled);
        _connection.Time.Advance(TimeSpan.FromMilliseconds(999));
        _connection.Beat(); // 1.999 s after the peer read: not idle yet.
        Assert.Equal(0, _connection.ReadsCanceled);

        reads = _connection.Reads;
        _connection.Time.Advance(TimeSpan.FromMilliseconds(1));
        _connection.Beat(); // Now 2 s after the peer read.
        Assert.Equal(1, _connection.ReadsCanceled);
        Assert.Equal(Goodbye, await _connection.TakeAsync(Goodbye.Length));
        await _connection.WaitForReadsAsync(reads + 1); // Lingering: reading what the client may still send.
        Assert.False(serving.IsCompleted);
        _connection.Time.Advance(LineConnectionHandler.QuietPeriod); // The client sends nothing more.
        await serving.WaitAsync(Timeouts.Read);
        Assert.False(_connection.Aborted); // Closed gracefully.
    }

    [Fact]
    public async Task Bytes_without_a_newline_do_not_restart_the_clock()
    {
        Task serving = _connection.Start(new ServerOptions { IdleTimeoutSeconds = 2 });
        Assert.Equal(Banner, await _connection.TakeAsync(Banner.Length));
        for (int i = 0; i < 7; i++)
        {
            await _connection.SendAsync("E");
            _connection.Time.Advance(TimeSpan.FromMilliseconds(250));
            _connection.Beat();
        }

        _connection.Time.Advance(TimeSpan.FromMilliseconds(249));
        _connection.Beat(); // 1.999 s, with a byte every 250 ms: not yet.
        Assert.Equal(0, _connection.ReadsCanceled);
        int reads = _connection.Reads;
        _connection.Time.Advance(TimeSpan.FromMilliseconds(1));
        _connection.Beat(); // 2 s without a line.
        Assert.Equal(1, _connection.ReadsCanceled);
        Assert.Equal(Goodbye, await _connection.TakeAsync(Goodbye.Length));
        await _connection.WaitForReadsAsync(reads + 1); // Lingering.
        _connection.Time.Advance(LineConnectionHandler.QuietPeriod);
        await serving.WaitAsync(Timeouts.Read);
    }

    [Fact]
    public async Task A_complete_line_within_the_idle_timeout_restarts_the_clock()
    {
        Task serving = _connection.Start(new ServerOptions { IdleTimeoutSeconds = 2 });
        Assert.Equal(Banner, await _connection.TakeAsync(Banner.Length));
        for (int i = 0; i < 5; i++)
        {
            _connection.Time.Advance(TimeSpan.FromMilliseconds(1999)); // Below the timeout each time, above it in total.
            _connection.Beat();
            await _connection.SendAsync("ECHO awake\n");
            Assert.Equal("ECHO awake\n", await _connection.TakeAsync(11)); // Answered: the clock started again before.
        }

        Assert.Equal(0, _connection.ReadsCanceled);
        _connection.Time.Advance(TimeSpan.FromMilliseconds(2000)); // Then silence: the timeout.
        _connection.Beat();
        Assert.Equal(1, _connection.ReadsCanceled);
        Assert.Equal(Goodbye, await _connection.TakeAsync(Goodbye.Length));
        Assert.False(serving.IsCompleted);
    }

    [Fact]
    public async Task An_idle_timeout_of_zero_never_expires()
    {
        Task serving = _connection.Start(new ServerOptions { IdleTimeoutSeconds = 0 });
        Assert.Equal(Banner, await _connection.TakeAsync(Banner.Length));
        _connection.Time.Advance(TimeSpan.FromDays(30));
        _connection.Beat();
        Assert.Equal(0, _connection.ReadsCanceled);
        await _connection.SendAsync("ECHO still here\n");
        Assert.Equal("ECHO still here\n", await _connection.TakeAsync(16));
        Assert.False(serving.IsCompleted);
    }

    public ValueTask DisposeAsync() => _connection.DisposeAsync();
}
