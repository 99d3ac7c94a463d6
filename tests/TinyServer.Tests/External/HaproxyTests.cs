using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.RegularExpressions;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.External;

/// <summary>
/// Scale-out behind a real HAProxy (Debian's package), all on loopback, with <c>deploy/haproxy.cfg</c> itself as the
/// configuration (free ports substituted, and <c>source 127.0.0.3</c> so that the servers see the balancer at
/// 127.0.0.3 while the client is 127.0.0.1). Two server instances with the PROXY protocol, the load generator through
/// HAProxy; one instance is stopped mid-run.
/// </summary>
[Collection(nameof(Alone))] // Three processes and a load run: timing-sensitive on a busy machine.
[Trait("Tier", "load")]
public partial class HaproxyTests
{
    private const string Balancer = "127.0.0.3";

    [Fact]
    public async Task Two_instances_share_the_load_see_the_client_and_the_run_survives_losing_one()
    {
        string[] serverArguments = ["--port", "0", "--bind", "127.0.0.1", "--proxy-protocol", "--trusted-proxy", Balancer, "--log-level", "Debug", "--shutdown-timeout", "2", "--health-port", "0"];
        await using ServerProcess first = await ServerProcess.StartAsync(serverArguments);
        await using ServerProcess second = await ServerProcess.StartAsync(serverArguments);
        // HAProxy checks each server's /readyz on its health port.
        await using HaproxyProcess haproxy = await HaproxyProcess.StartAsync(Balancer,
            (first.EndPoint.Port, await HealthPortAsync(first)), (second.EndPoint.Port, await HealthPortAsync(second)));

        using Process load = ProcessRunner.Start(BuiltPrograms.Dotnet,
            [BuiltPrograms.LoadGenDll, "--port", haproxy.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-c", "8", "-d", "10", "--requests-per-session", "20", "--reply-timeout", "5", "--json"]);
        load.StandardInput.Close();
        Task<string> loadOutput = load.StandardOutput.ReadToEndAsync();
        Task<string> loadProgress = load.StandardError.ReadToEndAsync();
        try
        {
            // Both instances serve sessions of the client, under its own address.
            await WaitForAsync(() => ClientSessions(first) >= 3 && ClientSessions(second) >= 3, "both instances serving client sessions", first, second);

            // Stop one mid-run. It drains: each of its connections gets ERROR SHUTTING_DOWN.
            Assert.False(load.HasExited, "the load ended before the stop: it must outlast it");
            int servedByFirstAtStop = ClientSessions(first);
            Assert.Equal(0, await second.StopAsync());
            Assert.False(load.HasExited, "the load ended during the stop: it must outlast it");

            // HAProxy takes it out of rotation, and the run goes on, on the other instance.
            await haproxy.WaitForLineAsync("Server tinyservers/tiny2 is DOWN");
            await WaitForAsync(() => ClientSessions(first) >= servedByFirstAtStop + 10, "sessions on the remaining instance after the stop", first, second);

            await load.WaitForExitAsync().WaitAsync(Timeouts.Process);
        }
        finally
        {
            if (!load.HasExited)
            {
                load.Kill(entireProcessTree: true);
            }
        }

        string json = await loadOutput.WaitAsync(Timeouts.Process);
        string progress = await loadProgress.WaitAsync(Timeouts.Process);
        JsonElement result = JsonSerializer.Deserialize<JsonElement>(json);
        long errors = result.GetProperty("errors").GetInt64();
        JsonElement byKind = result.GetProperty("errors_by_kind");
        string context = $"load: {json}\n{progress}\nfirst:\n{string.Join('\n', first.Output.TakeLast(30))}\nsecond:\n{string.Join('\n', second.Output.TakeLast(30))}\nhaproxy:\n{string.Join('\n', haproxy.Output)}";

        // Errors only on connections that were on the stopped instance: at most two each (ERROR SHUTTING_DOWN in place
        // of a reply, then the close), and no timeouts anywhere.
        int onStopped = ConnectionsOpenAtStop(second) + CutOffInAcceptQueue(haproxy, "tiny2");
        Assert.True(errors <= 2 * onStopped, $"{errors} errors, {onStopped} connections on the stopped instance\n{context}");
        Assert.True(byKind.GetProperty("timeout").GetInt64() == 0, context);
        Assert.True(result.GetProperty("requests").GetInt64() > 0, context);

        // The servers saw the client's address, 127.0.0.1, never the balancer's, for relayed connections.
        foreach (ServerProcess server in new[] { first, second })
        {
            Assert.Contains(server.Output, line => line.Contains($"PROXY v2 Proxy header from {Balancer}:", StringComparison.Ordinal) && line.Contains("client 127.0.0.1:", StringComparison.Ordinal));
            Assert.DoesNotContain(server.Output, line => line.Contains("Proxy header", StringComparison.Ordinal) && !line.Contains("client 127.0.0.1:", StringComparison.Ordinal));
            Assert.DoesNotContain(server.Output, line => line.Contains("Connection ", StringComparison.Ordinal) && line.Contains(" closed without a reply: ", StringComparison.Ordinal)
                && !line.Contains("shutting down", StringComparison.Ordinal));
        }
    }

    private static async Task<int> HealthPortAsync(ServerProcess server) =>
        int.Parse(HealthPort().Match(await server.WaitForLineAsync("Health endpoints on http://127.0.0.1:")).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);

    [GeneratedRegex(@"Health endpoints on http://127\.0\.0\.1:(\d+)/")]
    private static partial Regex HealthPort();

    // Sessions of the load generator (from 127.0.0.1) that ended with its QUIT.
    private static int ClientSessions(ServerProcess server) =>
        server.Output.Count(line => line.Contains(" from 127.0.0.1:", StringComparison.Ordinal) && line.Contains(" closed: Quit", StringComparison.Ordinal));

    // Admitted connections open when the stop began (drained or aborted), and those still waiting for their header.
    private static int ConnectionsOpenAtStop(ServerProcess server)
    {
        string stopped = server.Output.Single(line => line.Contains("Stopped after", StringComparison.Ordinal));
        Match counts = StoppedCounts().Match(stopped);
        Assert.True(counts.Success, stopped);
        int waiting = server.Output.Count(line => line.Contains("shutting down before a complete PROXY header", StringComparison.Ordinal));
        return int.Parse(counts.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)
            + int.Parse(counts.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture) + waiting;
    }

    // Sessions HAProxy had just connected to the stopping instance, still in its accept queue when it closed its
    // listener: the server never saw them, and HAProxy logs them as closed by the server before a byte ("0 SD").
    private static int CutOffInAcceptQueue(HaproxyProcess haproxy, string server) =>
        haproxy.Output.Count(line => line.Contains($" tinyservers/{server} ", StringComparison.Ordinal) && ServerClosedBeforeAByte().IsMatch(line));

    [GeneratedRegex(@" tinyservers/\S+ \S+ 0 S[A-Z] ")]
    private static partial Regex ServerClosedBeforeAByte();

    private static async Task WaitForAsync(Func<bool> condition, string what, ServerProcess first, ServerProcess second)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > Timeouts.Read)
            {
                Assert.Fail($"no {what} within {Timeouts.Read}; first served {ClientSessions(first)}, second {ClientSessions(second)}");
            }

            await Task.Delay(50);
        }
    }

    [GeneratedRegex(@"(\d+) connections drained, (\d+) aborted")]
    private static partial Regex StoppedCounts();
}
