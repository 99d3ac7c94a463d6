using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.External;

/// <summary>
/// HAProxy in the foreground (<c>-db</c>) on <c>deploy/haproxy.cfg</c> with test ports and a source address for the
/// backend; its log is its standard output. Used by <see cref="HaproxyTests"/> and <see cref="RollingRestartTests"/>.
/// </summary>
internal sealed class HaproxyProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly List<string> _output = [];
    private readonly Task _pump;
    private readonly string _config;
    private readonly string _statsSocket;

    private HaproxyProcess(Process process, string config, string statsSocket, int port)
    {
        _process = process;
        _config = config;
        _statsSocket = statsSocket;
        Port = port;
        _process.StandardInput.Close();
        _pump = Task.WhenAll(PumpAsync(process.StandardOutput), PumpAsync(process.StandardError));
    }

    public int Port { get; }

    public IReadOnlyList<string> Output
    {
        get
        {
            lock (_output)
            {
                return [.. _output];
            }
        }
    }

    /// <param name="source">The address HAProxy connects to the servers from (<c>source</c> in the backend).</param>
    /// <param name="firstServer">tiny1's line port and health port.</param>
    /// <param name="secondServer">tiny2's line port and health port.</param>
    public static async Task<HaproxyProcess> StartAsync(string source, (int Port, int HealthPort) firstServer, (int Port, int HealthPort) secondServer)
    {
        string haproxy = ProcessRunner.RequireTool("haproxy");
        string template = await File.ReadAllTextAsync(Path.Combine(BuiltPrograms.RepositoryRoot, "deploy", "haproxy.cfg"));
        for (int attempt = 1; ; attempt++)
        {
            int port = FreePort();
            string name = Path.Combine(Path.GetTempPath(), $"tinyserver-haproxy-{Guid.NewGuid():N}");
            string config = name + ".cfg";
            string statsSocket = name + ".sock";
            await File.WriteAllTextAsync(config, Substitute(template, source, port, statsSocket, firstServer, secondServer));
            var started = new HaproxyProcess(ProcessRunner.Start(haproxy, ["-f", config, "-db"]), config, statsSocket, port);
            if (await started.ListensAsync() || attempt == 3)
            {
                Assert.False(started._process.HasExited, $"haproxy exited: {string.Join('\n', started.Output)}");
                return started;
            }

            await started.DisposeAsync(); // The free port was taken in between: another one.
        }
    }

    /// <summary>How many lines logged so far contain <paramref name="text"/>.</summary>
    public int Count(string text) => Output.Count(line => line.Contains(text, StringComparison.Ordinal));

    /// <summary>Waits until more than <paramref name="seenBefore"/> lines contain <paramref name="text"/>.</summary>
    public async Task WaitForLineAsync(string text, int seenBefore = 0)
    {
        var clock = Stopwatch.StartNew();
        while (Count(text) <= seenBefore)
        {
            Assert.True(clock.Elapsed < Timeouts.Read, $"haproxy logged no new '{text}' within {Timeouts.Read}:\n{string.Join('\n', Output.TakeLast(60))}");
            await Task.Delay(50);
        }
    }

    /// <summary>
    /// <c>show stat</c> on the stats socket: one row per proxy and server, keyed by the CSV header's names (<c>pxname</c>,
    /// <c>svname</c>, <c>econ</c>, <c>wretr</c>, <c>wredis</c>, <c>cli_abrt</c>, <c>srv_abrt</c>, ...: section 9.1 of the
    /// management guide). Counters, not log lines: nothing is dropped.
    /// </summary>
    public async Task<List<Dictionary<string, string>>> StatsAsync()
    {
        string[] lines = (await CommandAsync("show stat")).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        string[] names = lines[0].TrimStart('#', ' ').Split(',');
        return [.. lines.Skip(1).Select(line => names.Zip(line.Split(',')).ToDictionary(pair => pair.First, pair => pair.Second, StringComparer.Ordinal))];
    }

    /// <summary>A field of <c>show info</c>, e.g. <c>DroppedLogs</c>.</summary>
    public async Task<string> InfoAsync(string field)
    {
        string line = (await CommandAsync("show info")).Split('\n').Single(line => line.StartsWith(field + ":", StringComparison.Ordinal));
        return line[(field.Length + 1)..].Trim();
    }

    private async Task<string> CommandAsync(string command)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(_statsSocket)).WaitAsync(Timeouts.Read);
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes(command + "\n")).AsTask().WaitAsync(Timeouts.Read);
        using var reader = new StreamReader(stream);
        return await reader.ReadToEndAsync().WaitAsync(Timeouts.Read); // haproxy closes after one command
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }

            await _process.WaitForExitAsync().WaitAsync(Timeouts.Process);
            await _pump.WaitAsync(Timeouts.Process);
        }
        finally
        {
            _process.Dispose();
            File.Delete(_config);
            File.Delete(_statsSocket);
        }
    }

    // The lines of deploy/haproxy.cfg that name addresses, rewritten; each must be there, so the file and the tests stay in step.
    private static string Substitute(string template, string source, int port, string statsSocket, (int Port, int HealthPort) firstServer, (int Port, int HealthPort) secondServer)
    {
        (string From, string To)[] edits =
        [
            ("bind 127.0.0.1:40000", $"bind 127.0.0.1:{port}"),
            ("server tiny1 127.0.0.1:40001 port 40101", $"server tiny1 127.0.0.1:{firstServer.Port} port {firstServer.HealthPort}"),
            ("server tiny2 127.0.0.1:40002 port 40102", $"server tiny2 127.0.0.1:{secondServer.Port} port {secondServer.HealthPort}"),
            ("maxconn 4096", $"maxconn 1000\n    stats socket {statsSocket} mode 600 level user"),
            // The section header only: "default_backend tinyservers" in the frontend ends the same way, and a source
            // there is ignored with a warning.
            ("\nbackend tinyservers\n", $"\nbackend tinyservers\n    source {source}\n"),
        ];
        foreach ((string from, string to) in edits)
        {
            Assert.Contains(from, template, StringComparison.Ordinal);
            template = template.Replace(from, to, StringComparison.Ordinal);
        }

        return template;
    }

    private static int FreePort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }

    // True once something listens on the port (read from /proc/net/tcp: a probe connection would reach a server)
    // and haproxy is still running a moment later; false if it exited (its port was taken).
    private async Task<bool> ListensAsync()
    {
        string local = $"0100007F:{Port:X4}";
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < Timeouts.Read && !_process.HasExited)
        {
            bool listening = File.ReadLines("/proc/net/tcp").Skip(1)
                .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                .Any(fields => fields[1] == local && fields[3] == "0A");
            if (listening)
            {
                await Task.Delay(200);
                return !_process.HasExited;
            }

            await Task.Delay(50);
        }

        return false;
    }

    private async Task PumpAsync(StreamReader reader)
    {
        while (await reader.ReadLineAsync() is { } line)
        {
            lock (_output)
            {
                _output.Add(line);
            }
        }
    }
}
