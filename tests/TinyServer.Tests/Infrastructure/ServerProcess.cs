using System.Diagnostics;
using System.Net;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
namespace TinyServer.Tests.Infrastructure;

/// <summary>
/// The built server (<c>dotnet TinyServer.Server.dll</c>) as a separate process. <see cref="StartAsync"/> returns once
/// it has logged "Listening on 127.0.0.1:PORT"; disposing kills it if it is still running.
/// </summary>
public sealed partial class ServerProcess : IAsyncDisposable
{
    private const int SigTerm = 15;

    private readonly Process _process;
    private readonly OutputLines _stdout;
    private readonly Task<string> _stderr;

    private ServerProcess(Process process)
    {
        _process = process;
        _process.StandardInput.Close();
        _stderr = process.StandardError.ReadToEndAsync();
        _stdout = new OutputLines(process.StandardOutput);
    }

    /// <summary>The 127.0.0.1 endpoint the server reported; the tests always bind 127.0.0.1.</summary>
    public IPEndPoint EndPoint { get; private set; } = new(IPAddress.Loopback, 0);

    /// <summary>Every standard output line read so far.</summary>
    public IReadOnlyList<string> Output => _stdout.All;

    /// <summary>The server's process id (for /proc readings).</summary>
    public int Id => _process.Id;

    /// <summary>Descriptors the server has open now (/proc/PID/fd).</summary>
    public int OpenDescriptors() => Directory.GetFiles($"/proc/{_process.Id}/fd").Length;

    /// <summary>Sets the server's soft and hard RLIMIT_NOFILE while it runs, as <c>prlimit --nofile</c> does.</summary>
    public void LimitOpenFiles(int limit)
    {
        var value = new RLimit { Current = (ulong)limit, Maximum = (ulong)limit };
        Assert.Equal(0, PrLimit(_process.Id, RlimitNofile, in value, IntPtr.Zero));
    }

    /// <param name="arguments">Server options.</param>
    /// <param name="environment">Extra environment variables.</param>
    /// <param name="launcher">A program that runs the server as its child (<c>launcher dotnet TinyServer.Server.dll ...</c>).</param>
    public static async Task<ServerProcess> StartAsync(IEnumerable<string> arguments, IDictionary<string, string>? environment = null, string? launcher = null)
    {
        Process process = launcher is null
            ? ProcessRunner.Start(BuiltPrograms.Dotnet, [BuiltPrograms.ServerDll, .. arguments], environment)
            : ProcessRunner.Start(launcher, [BuiltPrograms.Dotnet, BuiltPrograms.ServerDll, .. arguments], environment);
        var server = new ServerProcess(process);
        try
        {
            string line = await server.WaitForLineAsync("Listening on 127.0.0.1:");
            server.EndPoint = new IPEndPoint(IPAddress.Loopback, int.Parse(ListeningPort().Match(line).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>Reads standard output until a line containing <paramref name="text"/>; fails if the server exits or is silent too long.</summary>
    public async Task<string> WaitForLineAsync(string text)
    {
        using var deadline = new CancellationTokenSource(Timeouts.Process);
        try
        {
            while (await _stdout.Unread.WaitToReadAsync(deadline.Token))
            {
                while (_stdout.Unread.TryRead(out string? line))
                {
                    if (line.Contains(text, StringComparison.Ordinal))
                    {
                        return line;
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"no line with '{text}' within {Timeouts.Process}; output so far:\n{string.Join('\n', Output)}");
        }

        string stderr = await _stderr.WaitAsync(Timeouts.Process);
        Assert.Fail($"the server ended its output without a line with '{text}'; stdout:\n{string.Join('\n', Output)}\nstderr:\n{stderr}");
        return "";
    }

    /// <summary>Sends SIGTERM without waiting.</summary>
    public void Terminate() => Assert.Equal(0, SendSignal(_process.Id, SigTerm));

    /// <summary>Waits for the process to exit on its own and returns its exit code.</summary>
    public async Task<int> WaitForExitAsync()
    {
        await _process.WaitForExitAsync().WaitAsync(Timeouts.Process);
        await _stdout.Pumped.WaitAsync(Timeouts.Process);
        return _process.ExitCode;
    }

    /// <summary>Resident set size in KiB (VmRSS of /proc/PID/status).</summary>
    public long ResidentKiB()
    {
        string line = File.ReadLines($"/proc/{_process.Id}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>CPU time used so far (user + system), from /proc/PID/stat.</summary>
    public TimeSpan CpuTime()
    {
        string stat = File.ReadAllText($"/proc/{_process.Id}/stat");
        string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        long ticks = long.Parse(fields[11], System.Globalization.CultureInfo.InvariantCulture) + long.Parse(fields[12], System.Globalization.CultureInfo.InvariantCulture);
        return TimeSpan.FromSeconds(ticks / 100.0); // USER_HZ is 100 on Linux.
    }

    /// <summary>Asks the server to shut down gracefully (SIGTERM, as systemd or Ctrl-C would) and returns its exit code.
    /// Its logger flushes on the way out, so <see cref="Output"/> then holds every line it ever logged.</summary>
    public async Task<int> StopAsync()
    {
        Assert.Equal(0, SendSignal(_process.Id, SigTerm));
        await _process.WaitForExitAsync().WaitAsync(Timeouts.Process);
        await _stdout.Pumped.WaitAsync(Timeouts.Process);
        return _process.ExitCode;
    }

    public async Task<string> StandardErrorAfterExitAsync() => await _stderr.WaitAsync(Timeouts.Process);

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }

            await _process.WaitForExitAsync().WaitAsync(Timeouts.Process);
        }
        finally
        {
            _process.Dispose();
        }
    }

    [GeneratedRegex(@"Listening on 127\.0\.0\.1:(\d+)$")]
    private static partial Regex ListeningPort();

    private const int RlimitNofile = 7;

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current;
        public ulong Maximum;
    }

    [DllImport("libc", EntryPoint = "prlimit", SetLastError = true)]
    private static extern int PrLimit(int pid, int resource, in RLimit newLimit, IntPtr oldLimit);

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SendSignal(int pid, int signal);
}
