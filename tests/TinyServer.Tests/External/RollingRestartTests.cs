using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.RegularExpressions;
using TinyServer.Tests.Hardening;
using TinyServer.Tests.Infrastructure;
using Xunit.Abstractions;

namespace TinyServer.Tests.External;

/// <summary>
/// A rolling restart behind the real HAProxy (issue 11, test 5b): two server processes with the drain delay and health
/// port of the deploy files behind HAProxy on <c>deploy/haproxy.cfg</c> (as in <see cref="HaproxyTests"/>), two load
/// generator processes through it, and each instance in turn stopped (SIGTERM), waited for (exit 0), started again on
/// the same ports and waited for until HAProxy has it UP and sends it sessions again. The clients see nothing: 0 errors
/// and 0 lost requests, and HAProxy's log has no connection refused, reset or redispatched.
/// </summary>
[Collection(nameof(Alone))] // Five processes under full load, and HAProxy's checks keep time: nothing else may run.
[Trait("Tier", "load")]
public partial class RollingRestartTests(ITestOutputHelper log)
{
    private const string Balancer = "127.0.0.3";

    /// <summary>deploy/haproxy.cfg: "Run the servers with --drain-delay above inter x fall: 3 s" (checked below).</summary>
    private const int DrainDelaySeconds = 3;

    /// <summary>Long enough to outlast both restarts on a slow machine (they take about 12 s here); checked below.</summary>
    private const int LoadSeconds = 30;

    /// <summary>Short sessions (50 requests, then QUIT): new connections reach HAProxy all through the restarts.</summary>
    private const int ChurnConnections = 8;

    /// <summary>Connections that never end on their own: each restart ends those on the instance with ERROR SHUTTING_DOWN.</summary>
    private const int SteadyConnections = 4;

    /// <summary>HAProxy's <c>show stat</c> counters reported: connection errors, retries, redispatches, aborts by client and server.</summary>
    private static readonly string[] Counters = ["econ", "wretr", "wredis", "cli_abrt", "srv_abrt"];

    [Theory]
    [InlineData("epoll")]
    [InlineData("sockets")]
    public async Task A_rolling_restart_behind_haproxy_under_load_costs_the_clients_nothing(string transport)
    {
        string config = await File.ReadAllTextAsync(Path.Combine(BuiltPrograms.RepositoryRoot, "deploy", "haproxy.cfg"));
        Assert.Contains("check inter 1s fall 2 rise 2", config, StringComparison.Ordinal); // 1 s x 2 < DrainDelaySeconds

        int[] ports = FreePortsBelowTheEphemeralRange(4);
        Instance[] instances = [new("tiny1", ports[0], ports[1]), new("tiny2", ports[2], ports[3])];
        var stops = new List<string>();
        List<ServerProcess> started = [];
        HaproxyProcess? haproxy = null;
        LoadProcess? churn = null;
        LoadProcess? steady = null;
        try
        {
            foreach (Instance instance in instances)
            {
                instance.Server = await StartAsync(instance, transport, started);
            }

            haproxy = await HaproxyProcess.StartAsync(Balancer, (instances[0].Port, instances[0].HealthPort), (instances[1].Port, instances[1].HealthPort));
            churn = LoadProcess.Start(haproxy.Port, ChurnConnections, ["--requests-per-session", "50"]);
            steady = LoadProcess.Start(haproxy.Port, SteadyConnections, []);
            var sinceLoadStart = Stopwatch.StartNew();
            foreach (Instance instance in instances)
            {
                await WaitForSessionsAsync(haproxy, instance.Name, after: -1);
            }

            foreach (Instance instance in instances)
            {
                Assert.False(churn.HasExited || steady.HasExited, "the load ended before the restarts were done: it must outlast them");
                string down = $"Server tinyservers/{instance.Name} is DOWN";
                string up = $"Server tinyservers/{instance.Name} is UP";
                int downBefore = haproxy.Count(down);
                int upBefore = haproxy.Count(up);

                // SIGTERM: /readyz turns 503, HAProxy marks the instance DOWN after two failed checks (503, not a refused
                // check) while it still accepts; after the delay it drains its connections (ERROR SHUTTING_DOWN) and exits 0.
                ServerProcess stopping = instance.Server!;
                stopping.Terminate();
                await haproxy.WaitForLineAsync(down, downBefore);
                string marked = haproxy.Output[LastIndex(haproxy.Output, down)];
                Assert.True(marked.Contains("code: 503", StringComparison.Ordinal), $"taken out by something else than its /readyz 503: {marked}");
                Assert.Equal(0, await stopping.WaitForExitAsync());
                stops.Add($"{instance.Name}: {Line(stopping, "Drain delay over")} / {Line(stopping, "Stopped after")}");
                Match stopped = StoppedCounts().Match(Line(stopping, "Stopped after"));
                Assert.True(stopped.Success && stopped.Groups[2].Value == "0", $"{instance.Name} aborted connections: {Line(stopping, "Stopped after")}");

                // The same ports again; ready, then UP in HAProxy's eyes (rise 2) and given sessions again.
                instance.Server = await StartAsync(instance, transport, started);
                await haproxy.WaitForLineAsync(up, upBefore);
                await WaitForSessionsAsync(haproxy, instance.Name, after: LastIndex(haproxy.Output, up));
            }

            Assert.False(churn.HasExited || steady.HasExited, "the load ended before the restarts were done: it must outlast them");
            DateTime restartsDone = DateTime.Now;
            TimeSpan restartsTook = sinceLoadStart.Elapsed;
            LoadResult churned = await churn.ResultAsync();
            LoadResult steadied = await steady.ResultAsync();
            IReadOnlyList<string> haproxyLog = haproxy.Output;
            List<Dictionary<string, string>> stats = [.. (await haproxy.StatsAsync()).Where(row => row["pxname"] == "tinyservers")];
            string droppedLogs = await haproxy.InfoAsync("DroppedLogs");
            List<Session> sessions = Sessions(haproxyLog);
            string counts = string.Join(", ", sessions.GroupBy(s => s.State).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"\"{g.Key}\" {g.Count()}"));
            string figures = $"""
                {transport}: churn {churned.Summary}
                {transport}: steady {steadied.Summary}
                {transport}: HAProxy sessions {sessions.Count} (tiny1 {sessions.Count(s => s.Server == "tiny1")}, tiny2 {sessions.Count(s => s.Server == "tiny2")}), termination states {counts}, redispatched {sessions.Count(s => s.Retries > 0)}
                {transport}: HAProxy counters {string.Join("; ", stats.Select(row => $"{row["svname"]}: sessions {row["stot"]}, {string.Join(", ", Counters.Select(name => $"{name} {row[name]}"))}"))}; log lines dropped {droppedLogs}
                {transport}: both restarts done {restartsTook.TotalSeconds:F1} s into the {LoadSeconds} s load
                {string.Join('\n', stops.Select(stop => $"{transport}: {stop}"))}
                """;
            log.WriteLine(figures);
            string context = $"{figures}\nchurn: {churned.Json}\n{churned.Progress}\nsteady: {steadied.Json}\n{steadied.Progress}\nhaproxy (not '--'):\n{string.Join('\n', haproxyLog.Where(line => !line.Contains(" -- ", StringComparison.Ordinal)).Take(100))}";

            // The clients: not one error, not one request lost; the steady connections were ended by the drains,
            // reconnected through HAProxy to the other instance, and resent what they were told was not executed.
            foreach (LoadResult load in new[] { churned, steadied })
            {
                Assert.True(load.ExitCode == 0 && load.Errors == 0 && load.Lost == 0 && load.Requests > 0 && !load.EndedEarly, context);
            }

            Assert.True(steadied.Reconnects >= SteadyConnections && steadied.Resent > 0, context);
            Assert.True(churned.Sessions > 0, context);

            // HAProxy's log (section 8.5 of its configuration manual, "Session state at disconnection"). Acceptable:
            // "--", a normal end (the server's close after BYE or ERROR SHUTTING_DOWN, relayed to the client), and a
            // client abort (C: "CD" in the data phase, "CC" while connecting): the load generators closing the
            // connections they still hold when their run is over, at most one per connection and only after the
            // restarts. Anything starting with S is the server aborting (an RST: "SD", or "0 SD" for a connection cut
            // in an accept queue) or refusing ("SC"), and <NOSRV> is no server up at all; a retry count (redispatch)
            // means a server refused a connection that HAProxy then sent to the other: the drain delay must keep all of
            // these from happening (without it, a run here had 1998 sessions redispatched, still with 0 errors).
            Assert.All(sessions, s => Assert.True((s.State == "--" || s.State[0] == 'C') && s.Server is "tiny1" or "tiny2" && s.Retries == 0, $"{s.Line}\n{context}"));
            // HAProxy's own counters for the backend and each server (its log may drop lines under load: DroppedLogs):
            // no connection error (a refused connect), retry, redispatch, or transfer aborted by a server; client aborts only
            // as many as the load generators hold connections (their closes at the end of the run, as below).
            Assert.All(stats, row => Assert.All(Counters.Where(name => name != "cli_abrt"), name => Assert.True(row[name] is "0" or "", $"{row["svname"]} {name} {row[name]}\n{context}")));
            Assert.True(long.Parse(stats.Single(row => row["svname"] == "BACKEND")["cli_abrt"], CultureInfo.InvariantCulture) <= ChurnConnections + SteadyConnections, context);
            Assert.DoesNotContain(haproxyLog, line => line.Contains(" config : ", StringComparison.Ordinal)); // deploy/haproxy.cfg as rewritten: no warning
            List<Session> aborted = [.. sessions.Where(s => s.State[0] == 'C')];
            Assert.True(aborted.Count <= ChurnConnections + SteadyConnections, context);
            Assert.All(aborted, s => Assert.True(s.Ended >= restartsDone, $"a client abort during the restarts: {s.Line}\n{context}"));
        }
        finally
        {
            foreach (LoadProcess? load in new[] { churn, steady })
            {
                load?.Dispose();
            }

            if (haproxy is not null)
            {
                await haproxy.DisposeAsync();
            }

            foreach (ServerProcess server in started)
            {
                await server.DisposeAsync();
            }
        }
    }

    private static async Task<ServerProcess> StartAsync(Instance instance, string transport, List<ServerProcess> started)
    {
        ServerProcess server = await ServerProcess.StartAsync(
            ["--port", $"{instance.Port}", "--bind", "127.0.0.1", "--health-port", $"{instance.HealthPort}", "--transport", transport,
             "--proxy-protocol", "--trusted-proxy", Balancer, "--drain-delay", $"{DrainDelaySeconds}", "--shutdown-timeout", "5"]);
        started.Add(server);
        Assert.Equal(instance.Port, server.EndPoint.Port);
        using HttpClient http = LameDuckTests.NewClient(await LameDuckTests.HealthUriAsync(server));
        await LameDuckTests.WaitForStatusAsync(http, "/readyz", HttpStatusCode.OK);
        return server;
    }

    // Waits until HAProxy has logged ten sessions of the load on the instance after line `after` of its log.
    private static async Task WaitForSessionsAsync(HaproxyProcess haproxy, string server, int after)
    {
        var clock = Stopwatch.StartNew();
        while (Sessions(haproxy.Output.Skip(after + 1)).Count(s => s.Server == server) < 10)
        {
            Assert.True(clock.Elapsed < Timeouts.Read, $"HAProxy sent {server} no sessions within {Timeouts.Read}:\n{string.Join('\n', haproxy.Output.TakeLast(40))}");
            await Task.Delay(50);
        }
    }

    private static int LastIndex(IReadOnlyList<string> lines, string text)
    {
        for (int i = lines.Count - 1; i >= 0; i--)
        {
            if (lines[i].Contains(text, StringComparison.Ordinal))
            {
                return i;
            }
        }

        return -1;
    }

    private static string Line(ServerProcess server, string text) => server.Output.SingleOrDefault(line => line.Contains(text, StringComparison.Ordinal)) ?? $"(no '{text}' line)";

    // HAProxy's tcplog lines for sessions of the frontend; every one must parse.
    private static List<Session> Sessions(IEnumerable<string> lines)
    {
        var sessions = new List<Session>();
        foreach (string line in lines.Where(line => line.Contains("] tinyserver ", StringComparison.Ordinal)))
        {
            Match match = TcpLog().Match(line);
            Assert.True(match.Success, $"not a tcplog line: {line}");
            DateTime accepted = DateTime.ParseExact(match.Groups["date"].Value, "dd/MMM/yyyy:HH:mm:ss.fff", CultureInfo.InvariantCulture);
            sessions.Add(new Session(
                line,
                match.Groups["server"].Value,
                match.Groups["state"].Value,
                int.Parse(match.Groups["retries"].Value, CultureInfo.InvariantCulture),
                accepted.AddMilliseconds(int.Parse(match.Groups["tt"].Value, CultureInfo.InvariantCulture))));
        }

        return sessions;
    }

    // Ports for the instances, which must be bound again after each restart: below the ephemeral range, so that none of
    // the thousands of connections the load makes meanwhile can have taken one as its local port.
    private static int[] FreePortsBelowTheEphemeralRange(int count)
    {
        int low = int.Parse(File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)[0], CultureInfo.InvariantCulture);
        var ports = new List<int>();
        for (int attempt = 0; ports.Count < count && attempt < 1000; attempt++)
        {
            int candidate = Random.Shared.Next(Math.Max(1024, low / 2), low);
            if (!ports.Contains(candidate) && CanBind(candidate))
            {
                ports.Add(candidate);
            }
        }

        Assert.Equal(count, ports.Count);
        return [.. ports];
    }

    private static bool CanBind(int port)
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            probe.Bind(new IPEndPoint(IPAddress.Loopback, port));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    // client [accept date] frontend backend/server Tw/Tc/Tt bytes state actconn/feconn/beconn/srv_conn/retries queues
    [GeneratedRegex(@"^\S+ \[(?<date>[^\]]+)\] tinyserver tinyservers/(?<server>\S+) -?\d+/-?\d+/\+?(?<tt>\d+) \+?\d+ (?<state>\S\S) \d+/\d+/\d+/\d+/\+?(?<retries>\d+) \d+/\d+$")]
    private static partial Regex TcpLog();

    [GeneratedRegex(@"(\d+) connections drained, (\d+) aborted")]
    private static partial Regex StoppedCounts();

    private sealed record Session(string Line, string Server, string State, int Retries, DateTime Ended);

    private sealed class Instance(string name, int port, int healthPort)
    {
        public string Name { get; } = name;

        public int Port { get; } = port;

        public int HealthPort { get; } = healthPort;

        public ServerProcess? Server { get; set; }
    }

    private sealed record LoadResult(int ExitCode, string Json, string Progress)
    {
        private JsonElement Root => JsonSerializer.Deserialize<JsonElement>(Json);

        public long Requests => Root.GetProperty("requests").GetInt64();

        public long Errors => Root.GetProperty("errors").GetInt64();

        public long Reconnects => Root.GetProperty("reconnects").GetInt64();

        public long Resent => Root.GetProperty("resent").GetInt64();

        public long Lost => Root.GetProperty("lost").GetInt64();

        public long Sessions => Root.GetProperty("sessions").GetInt64();

        public bool EndedEarly => Root.GetProperty("ended_early").GetBoolean();

        public string Summary => $"requests {Requests}, sessions {Sessions}, reconnects {Reconnects} (resent {Resent}, lost {Lost}), errors {Errors}, exit code {ExitCode}";
    }

    /// <summary>The load generator through HAProxy for <see cref="LoadSeconds"/>, its JSON report read at the end.</summary>
    private sealed class LoadProcess : IDisposable
    {
        private readonly Process _process;
        private readonly Task<string> _stdout;
        private readonly Task<string> _stderr;

        private LoadProcess(Process process)
        {
            _process = process;
            _process.StandardInput.Close();
            _stdout = process.StandardOutput.ReadToEndAsync();
            _stderr = process.StandardError.ReadToEndAsync();
        }

        public bool HasExited => _process.HasExited;

        public static LoadProcess Start(int port, int connections, string[] extra) =>
            new(ProcessRunner.Start(BuiltPrograms.Dotnet,
                [BuiltPrograms.LoadGenDll, "--port", $"{port}", "-c", $"{connections}", "-P", "4", "-d", $"{LoadSeconds}", "--reply-timeout", "5", "--json", .. extra]));

        public async Task<LoadResult> ResultAsync()
        {
            await _process.WaitForExitAsync().WaitAsync(Timeouts.Process);
            return new LoadResult(_process.ExitCode, await _stdout.WaitAsync(Timeouts.Process), await _stderr.WaitAsync(Timeouts.Process));
        }

        public void Dispose()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }

            _process.Dispose();
        }
    }
}
