using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.RegularExpressions;
using TinyServer.Tests.Infrastructure;
using Xunit.Abstractions;

namespace TinyServer.Tests.Operations;

/// <summary>
/// Issue 11, test (a): a socket-activated restart under load loses nothing. The test plays systemd: it binds the
/// listening socket once and passes it to instance A, runs the load generator (a real process) against it, starts
/// instance B on the same socket (both accept from it while both run), SIGTERMs A, and SIGTERMs B once the load is
/// over. A's connections end with ERROR SHUTTING_DOWN; the load generator dials again, lands on B and resends what
/// the notice answered.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
[Collection(nameof(Alone))] // Two servers and a load run: timing-sensitive on a busy machine.
[Trait("Tier", "load")]
public partial class ActivatedRestartTests(ITestOutputHelper log)
{
    private const int Connections = 20;

    [Theory]
    [InlineData("epoll")]
    [InlineData("sockets")]
    public async Task A_socket_activated_restart_under_load_loses_no_request_and_both_instances_exit_0(string transport)
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(511);
        int port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        string[] arguments = ["--transport", transport, "--port", "0", "--bind", "127.0.0.1"];

        await using ServerProcess a = await ServerProcess.StartActivatedAsync([listener], ["tinyserver"], arguments);
        int idle = a.OpenDescriptors();
        using Process load = ProcessRunner.Start(BuiltPrograms.Dotnet,
            [BuiltPrograms.LoadGenDll, "--port", port.ToString(CultureInfo.InvariantCulture), "-c", Connections.ToString(CultureInfo.InvariantCulture),
             "-P", "4", "-d", "8", "--reply-timeout", "5", "--connect-timeout", "10", "--json"]);
        load.StandardInput.Close();
        Task<string> loadOutput = load.StandardOutput.ReadToEndAsync();
        Task<string> loadProgress = load.StandardError.ReadToEndAsync();
        ServerProcess? b = null;
        try
        {
            // Every connection of the load is on A (one descriptor each) before B starts.
            await WaitForAsync(() => a.OpenDescriptors() >= idle + Connections, $"{Connections} connections on A");
            b = await ServerProcess.StartActivatedAsync([listener], ["tinyserver"], arguments);
            Assert.False(load.HasExited, "the load ended before A's stop: it must outlast it");

            Assert.Equal(0, await a.StopAsync());
            Assert.False(load.HasExited, "the load ended during A's stop: it must outlast it");
            Assert.False(listener.LingerState!.Enabled, "A's stop left SO_LINGER on the shared socket");

            await load.WaitForExitAsync().WaitAsync(Timeouts.Process);
            Assert.Equal(0, await b.StopAsync());
        }
        finally
        {
            if (!load.HasExited)
            {
                load.Kill(entireProcessTree: true);
            }

            if (b is not null)
            {
                await b.DisposeAsync();
            }
        }

        string json = await loadOutput.WaitAsync(Timeouts.Process);
        string progress = await loadProgress.WaitAsync(Timeouts.Process);
        JsonElement result = JsonSerializer.Deserialize<JsonElement>(json);
        string context = $"load: {json}\n{progress}\nA:\n{string.Join('\n', a.Output.TakeLast(10))}\nB:\n{string.Join('\n', b.Output.TakeLast(10))}";
        log.WriteLine($"{transport}: {json}");
        log.WriteLine($"A: {a.Output.LastOrDefault(l => l.Contains("Stopped after", StringComparison.Ordinal))}");
        log.WriteLine($"B: {b.Output.LastOrDefault(l => l.Contains("Stopped after", StringComparison.Ordinal))}");

        Assert.True(load.ExitCode == 0, context);
        Assert.True(result.GetProperty("errors").GetInt64() == 0, context);
        Assert.True(result.GetProperty("lost").GetInt64() == 0, context);
        Assert.True(result.GetProperty("requests").GetInt64() > 0, context);
        // Each of A's connections got ERROR SHUTTING_DOWN and was replaced, on B.
        Assert.True(result.GetProperty("reconnects").GetInt64() >= Connections, context);

        // A drained every connection it had (none aborted); B took A's connections and served them to the end.
        var stoppedA = Stopped(a);
        Assert.True(stoppedA.Accepted >= Connections && stoppedA.Drained >= Connections && stoppedA.Aborted == 0, context);
        var stoppedB = Stopped(b);
        Assert.True(stoppedB.Accepted >= Connections && stoppedB.Aborted == 0, context);
    }

    /// <summary>The numbers of the server's last line, "Stopped after N connections (...): D connections drained, A aborted".</summary>
    private static (int Accepted, int Drained, int Aborted) Stopped(ServerProcess server)
    {
        string line = server.Output.Last(l => l.Contains("Stopped after ", StringComparison.Ordinal));
        Match match = StoppedLine().Match(line);
        Assert.True(match.Success, line);
        return (Number(match, 1), Number(match, 2), Number(match, 3));

        static int Number(Match match, int group) => int.Parse(match.Groups[group].Value, CultureInfo.InvariantCulture);
    }

    private static async Task WaitForAsync(Func<bool> condition, string what)
    {
        using var deadline = new CancellationTokenSource(Timeouts.Process);
        while (!condition())
        {
            Assert.False(deadline.IsCancellationRequested, $"not seen within {Timeouts.Process}: {what}");
            await Task.Delay(20, CancellationToken.None);
        }
    }

    [GeneratedRegex(@"Stopped after (\d+) connections \(\d+ more turned away at the limit\): (\d+) connections drained, (\d+) aborted")]
    private static partial Regex StoppedLine();
}
