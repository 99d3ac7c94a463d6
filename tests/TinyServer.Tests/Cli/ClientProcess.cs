using System.Diagnostics;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Cli;

/// <summary>
/// The built client (<c>dotnet TinyServer.Client.dll</c>) running, with its standard input a pipe the test writes
/// to (and keeps open) while it reads the client's output line by line as it comes. Disposing kills the client if it
/// still runs.
/// </summary>
public sealed class ClientProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly OutputLines _stdout;
    private readonly Task<string> _stderr;

    private ClientProcess(Process process)
    {
        _process = process;
        _stderr = process.StandardError.ReadToEndAsync();
        _stdout = new OutputLines(process.StandardOutput);
    }

    public static ClientProcess Start(params string[] arguments) =>
        new(ProcessRunner.Start(BuiltPrograms.Dotnet, [BuiltPrograms.ClientDll, .. arguments]));

    /// <summary>Every standard output line read so far.</summary>
    public IReadOnlyList<string> Output => _stdout.All;

    /// <summary>Writes to the client's standard input and flushes; the pipe stays open.</summary>
    public async Task WriteAsync(string text)
    {
        await _process.StandardInput.WriteAsync(text).WaitAsync(Timeouts.Read);
        await _process.StandardInput.FlushAsync().WaitAsync(Timeouts.Read);
    }

    /// <summary>Closes the client's standard input: the end of input.</summary>
    public void CloseInput() => _process.StandardInput.Close();

    /// <summary>The next standard output line; fails if none comes within <paramref name="within"/>.</summary>
    public async Task<string> ReadLineAsync(TimeSpan within)
    {
        using var deadline = new CancellationTokenSource(within);
        try
        {
            if (await _stdout.Unread.WaitToReadAsync(deadline.Token) && _stdout.Unread.TryRead(out string? line))
            {
                return line;
            }
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"no output line from the client within {within.TotalSeconds} s; output so far:\n{string.Join('\n', Output)}");
        }

        Assert.Fail($"the client ended its output; output so far:\n{string.Join('\n', Output)}\nstderr:\n{await _stderr.WaitAsync(Timeouts.Read)}");
        return "";
    }

    /// <summary>Waits for the client to exit on its own within <paramref name="within"/> (its input left as it is).</summary>
    public async Task<ProcessResult> WaitForExitAsync(TimeSpan within)
    {
        try
        {
            await _process.WaitForExitAsync().WaitAsync(within);
        }
        catch (TimeoutException)
        {
            Assert.Fail($"the client did not exit within {within.TotalSeconds} s; output so far:\n{string.Join('\n', Output)}");
        }

        await _stdout.Pumped.WaitAsync(Timeouts.Read);
        string stdout = string.Concat(Output.Select(line => line + "\n"));
        return new ProcessResult(_process.ExitCode, stdout, await _stderr.WaitAsync(Timeouts.Read));
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
        }
        finally
        {
            _process.Dispose();
        }
    }
}
