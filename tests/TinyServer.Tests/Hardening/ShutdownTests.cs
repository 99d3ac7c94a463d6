using System.Text;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Hardening;

/// <summary>SIGTERM on the real server process: answers, then ERROR SHUTTING_DOWN, then exit 0.</summary>
[Trait("Tier", "process")]
public class ShutdownTests
{
    [Fact]
    public async Task Sigterm_answers_every_line_received_then_says_shutting_down_and_exits_0()
    {
        await using ServerProcess server = await ServerProcess.StartAsync(["--port", "0", "--bind", "127.0.0.1"]);
        await using RawConnection idle = await RawConnection.OpenAsync(server.EndPoint);
        await using RawConnection busy = await RawConnection.OpenAsync(server.EndPoint);
        const int Requests = 3000;
        await busy.SendAsync(string.Concat(Enumerable.Range(0, Requests).Select(i => $"ECHO {i}\n")) + "ECHO partial, no newline");
        Assert.Equal("ECHO 0", await busy.ReadLineAsync()); // The pipeline is under way, its replies unread.
        await Task.Delay(300);

        server.Terminate();

        for (int i = 1; i < Requests; i++)
        {
            Assert.Equal($"ECHO {i}", await busy.ReadLineAsync());
        }

        Assert.Equal(["ERROR SHUTTING_DOWN"], await busy.ReadLinesToEndAsync());
        Assert.Equal(["ERROR SHUTTING_DOWN"], await idle.ReadLinesToEndAsync());
        Assert.Equal(0, await server.WaitForExitAsync());
        Assert.EndsWith("Stopped after 2 connections (0 more turned away at the limit): 2 connections drained, 0 aborted", server.Output[^1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_peer_that_never_reads_is_aborted_after_the_shutdown_timeout()
    {
        await using ServerProcess server = await ServerProcess.StartAsync(["--port", "0", "--bind", "127.0.0.1", "--shutdown-timeout", "1"]);
        await using RawConnection stuck = await RawConnection.OpenAsync(server.EndPoint);
        byte[] flood = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("HELP\n", 20_000)));
        using var sending = new CancellationTokenSource(TimeSpan.FromSeconds(3));
        Task send = Task.Run(async () =>
        {
            // Keep the server's output full: it blocks on this peer, which never reads.
            while (!sending.IsCancellationRequested)
            {
                await stuck.SendAsync(flood).WaitAsync(sending.Token);
            }
        });
        await Task.Delay(1000);

        var stopping = System.Diagnostics.Stopwatch.StartNew();
        server.Terminate();
        Assert.Equal(0, await server.WaitForExitAsync());
        Assert.InRange(stopping.Elapsed.TotalSeconds, 0.9, 10);
        Assert.EndsWith("Stopped after 1 connections (0 more turned away at the limit): 0 connections drained, 1 aborted", server.Output[^1], StringComparison.Ordinal);
        await send.ContinueWith(_ => { }, TaskScheduler.Default);
    }
}
