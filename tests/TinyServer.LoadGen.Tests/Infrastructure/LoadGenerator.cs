using System.Globalization;
using System.Text.Json;

namespace TinyServer.LoadGen.Tests.Infrastructure;

/// <summary>What one run of the command line gave.</summary>
public sealed record RunOutput(int ExitCode, string Output, string Progress)
{
    /// <summary>The --json object on stdout.</summary>
    public JsonElement Json => JsonSerializer.Deserialize<JsonElement>(Output);

    public long Number(string name) => Json.GetProperty(name).GetInt64();

    public long Errors(string kind) => Json.GetProperty("errors_by_kind").GetProperty(kind).GetInt64();
}

/// <summary>Runs the load generator's command line in process, bounded by <see cref="Timeouts.Run"/>.</summary>
public static class LoadGenerator
{
    public static async Task<RunOutput> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var progress = new StringWriter();
        // A thread of its own: the run blocks it throughout, and the in-process server needs the thread pool.
        int code = await Task.Factory.StartNew(() => Cli.Run(args, output, progress), TaskCreationOptions.LongRunning).WaitAsync(Timeouts.Run);
        return new RunOutput(code, output.ToString(), progress.ToString());
    }

    /// <summary>A run against 127.0.0.1:<paramref name="port"/> with --json.</summary>
    public static Task<RunOutput> RunJsonAsync(int port, params string[] args) => RunAsync([.. At(port, args), "--json"]);

    /// <summary>A run against 127.0.0.1:<paramref name="port"/> with the text report.</summary>
    public static Task<RunOutput> RunTextAsync(int port, params string[] args) => RunAsync(At(port, args));

    /// <summary>The arguments of a run against 127.0.0.1:<paramref name="port"/>: <c>--port</c>, then <paramref name="args"/>.</summary>
    public static string[] At(int port, params string[] args) => ["--port", port.ToString(CultureInfo.InvariantCulture), .. args];
}
