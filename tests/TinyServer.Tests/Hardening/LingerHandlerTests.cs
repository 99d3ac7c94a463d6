using System.IO.Pipelines;
using TinyServer.Server;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Hardening;

/// <summary>
/// The linger before a close (<see cref="LingerTests"/> over real sockets) on the handler's clock, over in-memory
/// pipes: the client-to-server pipe pauses at one unread byte, so a send completes only once the handler consumed
/// it. The quiet period and the linger timeout both run on the <see cref="Microsoft.Extensions.Time.Testing.FakeTimeProvider"/>:
/// real time passing ends nothing.
/// </summary>
[Trait("Tier", "unit")]
public sealed class LingerHandlerTests : IAsyncDisposable
{
    private const string Banner = "WELCOME, I'm TinyServer not pressure\n";

    private readonly PipeConnection _connection = new(toServer: new PipeOptions(pauseWriterThreshold: 1, resumeWriterThreshold: 1, useSynchronizationContext: false));

    [Fact]
    public async Task A_client_that_keeps_sending_after_QUIT_is_closed_at_the_linger_timeout_and_not_before()
    {
        Task serving = await QuitAsync(lingerSeconds: 1);
        for (int step = 0; step < 24; step++)
        {
            await _connection.SendAsync("more and more\n"); // Consumed: still lingering.
            _connection.Time.Advance(TimeSpan.FromMilliseconds(40)); // Less than the quiet period (100 ms) between reads.
        }

        await Task.Delay(200); // Real time, twice the quiet period: nothing happens on a fake clock.
        await _connection.SendAsync("more and more\n");
        _connection.Time.Advance(TimeSpan.FromMilliseconds(39));
        await _connection.SendAsync("more and more\n"); // 999 ms after the goodbye: still lingering.
        Assert.False(serving.IsCompleted);

        _connection.Time.Advance(TimeSpan.FromMilliseconds(1)); // The linger timeout.
        await serving.WaitAsync(Timeouts.Read);
        Assert.False(_connection.Aborted);
    }

    [Fact]
    public async Task A_client_that_pauses_for_the_quiet_period_is_closed_well_before_the_linger_timeout()
    {
        Task serving = await QuitAsync(lingerSeconds: 2);
        _connection.Time.Advance(TimeSpan.FromMilliseconds(99));
        await _connection.SendAsync("the rest of a line\n"); // Consumed: still lingering, the quiet period starts again.
        await Task.Delay(200); // Real time: nothing happens on a fake clock.
        _connection.Time.Advance(TimeSpan.FromMilliseconds(99));
        await _connection.SendAsync("and another\n");
        Assert.False(serving.IsCompleted);

        _connection.Time.Advance(TimeSpan.FromMilliseconds(100)); // A pause of the quiet period: 298 ms after the goodbye.
        await serving.WaitAsync(Timeouts.Read);
        Assert.False(_connection.Aborted);
    }

    public ValueTask DisposeAsync() => _connection.DisposeAsync();

    /// <summary>Starts the handler, sends QUIT and reads the goodbye: the handler lingers from the clock's start.</summary>
    private async Task<Task> QuitAsync(int lingerSeconds)
    {
        Task serving = _connection.Start(new ServerOptions { LingerTimeoutSeconds = lingerSeconds });
        Assert.Equal(Banner, await _connection.TakeAsync(Banner.Length));
        await _connection.SendAsync("QUIT\n");
        Assert.Equal("BYE\n", await _connection.TakeAsync(4));
        return serving;
    }
}
