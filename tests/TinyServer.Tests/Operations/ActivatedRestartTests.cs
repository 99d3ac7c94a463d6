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
/// instance B on the same socket (both accept from it while both run), SIGTERMs A; then the same from B to C; and
/// SIGTERMs C once the load is over. A stopping instance's connections end with ERROR SHUTTING_DOWN; the load
/// generator dials again, lands on the next instance and resends what the notice answered.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
[Collection(nameof(Alone))] // Two servers at a time and a load run: timing-sensitive on a busy machine.
[Trait("Tier", "load")]
public partial class ActivatedRestartTests(ITestOutputHelper log)
{
    private const int Connections = 20;
    private const int Restarts = 2;
    private const int Duration = 10;

    [Theory]
    [InlineData("epoll", 0)]
    [InlineData("sockets", 0)]
    [InlineData("epoll", 100)]
    [InlineData("sockets", 100)]
    public async Task A_socket_activated_restart_under_load_loses_no_request_and_every_instance_exits_0(string transport, int requestsPerSession)
    {
        // 0: the 20 connections stay open until a stop ends them. 100: each connection also ends its session after 100
        // requests (QUIT) and dials again, so connections keep arriving, and wait in the accept queue, across a stop.
        string[] churn = requestsPerSession > 0 ? ["--requests-per-session", requestsPerSession.ToString(CultureInfo.InvariantCulture)] : [];
        int settled = requestsPerSession > 0 ? Connections / 2 : Connections; // Open on an instance at any moment, at least.
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(511);
        int port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        string[] arguments = ["--transport", transport, "--port", "0", "--bind", "127.0.0.1"];

        // A serves first; B takes over from A, then C from B: the second restart is of an instance that itself
        // inherited the socket from one that stopped (whatever A's stop left on the socket, B's connections have).
        var instances = new List<ServerProcess> { await ServerProcess.StartActivatedAsync([listener], ["tinyserver"], arguments) };
        var idle = new List<int> { instances[0].OpenDescriptors() }; // Each instance's descriptors before any connection.
        using Process load = ProcessRunner.Start(BuiltPrograms.Dotnet,
            [BuiltPrograms.LoadGenDll, "--port", port.ToString(CultureInfo.InvariantCulture), "-c", Connections.ToString(CultureInfo.InvariantCulture),
             "-P", "4", "-d", Duration.ToString(CultureInfo.InvariantCulture), "--reply-timeout", "5", "--connect-timeout", "10", "--json", .. churn]);
        load.StandardInput.Close();
        Task<string> loadOutput = load.StandardOutput.ReadToEndAsync();
        Task<string> loadProgress = load.StandardError.ReadToEndAsync();
        try
        {
            for (int restart = 1; restart <= Restarts; restart++)
            {
                // Every connection of the load is on the running instance (one descriptor each) before the next starts.
                // With sessions, a new instance accepts from the moment it is ready: its own count then may already
                // hold connections, so the first instance's is the baseline.
                ServerProcess old = instances[^1];
                int before = requestsPerSession > 0 ? idle[0] : idle[^1];
                await WaitForAsync(() => old.OpenDescriptors() >= before + settled, $"{settled} connections on instance {restart}");
                instances.Add(await ServerProcess.StartActivatedAsync([listener], ["tinyserver"], arguments));
                idle.Add(instances[^1].OpenDescriptors());
                Assert.False(load.HasExited, $"the load ended before restart {restart}: it must outlast it");

                Assert.Equal(0, await old.StopAsync());
                Assert.False(load.HasExited, $"the load ended during restart {restart}: it must outlast it");
                Assert.False(listener.LingerState!.Enabled, $"instance {restart}'s stop left SO_LINGER on the shared socket");
            }

            await load.WaitForExitAsync().WaitAsync(Timeouts.Process);
            Assert.Equal(0, await instances[^1].StopAsync());
        }
        finally
        {
            if (!load.HasExited)
            {
                load.Kill(entireProcessTree: true);
            }

            foreach (ServerProcess instance in instances)
            {
                await instance.DisposeAsync();
            }
        }

        string json = await loadOutput.WaitAsync(Timeouts.Process);
        string progress = await loadProgress.WaitAsync(Timeouts.Process);
        JsonElement result = JsonSerializer.Deserialize<JsonElement>(json);
        string[] stopped = [.. instances.Select(i => i.Output.LastOrDefault(l => l.Contains("Stopped after", StringComparison.Ordinal)) ?? "(no Stopped line)")];
        string context = $"load: {json}\n{progress}\n{string.Join('\n', stopped)}";
        log.WriteLine($"{transport}, sessions of {requestsPerSession}: {json}");
        log.WriteLine(string.Join('\n', stopped));

        Assert.True(load.ExitCode == 0, context);
        Assert.True(result.GetProperty("errors").GetInt64() == 0, context);
        Assert.True(result.GetProperty("lost").GetInt64() == 0, context);
        Assert.True(result.GetProperty("requests").GetInt64() > 0, context);
        // Each restart's connections got ERROR SHUTTING_DOWN and were replaced, on the next instance.
        Assert.True(result.GetProperty("reconnects").GetInt64() >= Restarts * Connections, context);

        // Each stopped instance drained every connection it had (none aborted); the next one took them over. With
        // sessions, a stopping instance may have none left to drain: while both run, sessions that end dial again and
        // may all land on the new instance before the stop (seen on the socket transport: 0 drained).
        for (int i = 0; i < instances.Count; i++)
        {
            var (accepted, drained, aborted) = Stopped(instances[i]);
            Assert.True(accepted >= Connections && aborted == 0, context);
            Assert.True(i == instances.Count - 1 || requestsPerSession > 0 || drained >= Connections, context);
        }
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
