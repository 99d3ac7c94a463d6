using System.Diagnostics;
using System.Reflection;
using TinyServer.LoadGen.Tests.Infrastructure;

namespace TinyServer.LoadGen.Tests;

/// <summary>What System.CommandLine adds to the command line: generated help, --version, response files, completions.</summary>
[Trait("Tier", "process")]
public sealed class CommandLineTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("loadgen-cli-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Theory]
    [InlineData("--port <N>", "server port (1 to 65535) [default: 40000]")]
    [InlineData("-c, --connections <N>", "connections (1 to 100000) [default: 50]")]
    [InlineData("-P, --pipeline <N>", "(1 to 4096) [default: 1]")]
    [InlineData("-d, --duration <SECONDS>", "(more than 0, at most 3600) [default: 5]")]
    [InlineData("--warmup <SECONDS>", "(0 to 3600) [default: 0]")]
    [InlineData("--command <SPEC>", "(write \\, for a comma in a line; at most 64 lines, weights 1 to 1000) [default: ECHO hello]")]
    [InlineData("--payload-size <N>", "(1 to 1048571)")]
    [InlineData("--rate <R>", "(0.001 to 1000000000)")]
    [InlineData("--retry-after <SECONDS>", "(0 to 3600) [default: 2]")]
    [InlineData("--connect-timeout <SECONDS>", "(more than 0, at most 3600) [default: 30]")]
    [InlineData("--redial-backoff <SECONDS>", "doubled each time, reset by a reply (0.001 to 60) [default: 0.05]")]
    [InlineData("--redial-backoff-max <SECONDS>", "not less than --redial-backoff (when not given: 1, or --redial-backoff if more) (0.001 to 60) [default: 1]")]
    [InlineData("--insecure", "with --tls: accept any certificate")]
    [InlineData("--tls", "speak TLS 1.2/1.3 (the server's --tls-port, or Redis's --tls-port with --redis)")]
    [InlineData("--tls-resume", "with --tls: resume sessions with the server's TLS 1.3 tickets")]
    [InlineData("-?, -h, --help", "Show help and usage information")]
    [InlineData("--version", "Show version information")]
    public async Task The_help_is_generated_from_each_options_range_and_default(string synopsis, string text)
    {
        RunOutput run = await LoadGenerator.RunAsync("--help");

        Assert.Equal(0, run.ExitCode);
        Assert.Equal("", run.Progress);
        string entry = Assert.Single(run.Output.Split('\n'), line => line.StartsWith("  " + synopsis + "  ", StringComparison.Ordinal));
        Assert.Contains(text, entry, StringComparison.Ordinal);
        Assert.Contains("Usage:\n  TinyServer.LoadGen [options]\n", run.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Version_prints_the_programs_informational_version()
    {
        // The built program itself: in process, the version would be the test host's.
        string version = typeof(Cli).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion;

        (int exitCode, string output, string error) = await RunAsync(Program, "--version");

        Assert.Equal(0, exitCode);
        Assert.Equal(version + "\n", output);
        Assert.Equal("", error);
    }

    [Fact]
    public async Task Version_with_other_options_is_bad_usage()
    {
        RunOutput run = await LoadGenerator.RunAsync("--version", "-c", "3");

        Assert.Equal(Cli.BadUsage, run.ExitCode);
        Assert.Equal("tinyserver-loadgen: error: --version option cannot be combined with other arguments.\n", run.Progress.ReplaceLineEndings("\n"));
    }

    [Fact]
    public void A_response_file_gives_its_arguments_in_its_place()
    {
        string file = Path.Combine(_directory, "load.rsp");
        File.WriteAllText(file, """
            # a comment line
            --port 1234
            --command "ECHO a\, b:2,TIME"
            --json
            """);

        LoadOptions options = ArgumentParser.Parse(["-c", "9", "@" + file, "-P", "2"])!;

        Assert.Equal(1234, options.Port);
        Assert.Equal(9, options.Connections);
        Assert.Equal(2, options.Pipeline);
        Assert.Equal([new CommandSpec("ECHO a, b", 2), new CommandSpec("TIME", 1)], options.Commands);
        Assert.True(options.Json);
    }

    [Fact]
    public void A_bad_value_in_a_response_file_is_named_like_one_on_the_command_line()
    {
        string file = Path.Combine(_directory, "bad.rsp");
        File.WriteAllText(file, "--pipeline 0\n");

        UsageException e = Assert.Throws<UsageException>(() => ArgumentParser.Parse(["@" + file]));

        Assert.Equal("--pipeline: '0' is not a whole number from 1 to 4096", e.Message);
    }

    [Fact]
    public async Task A_missing_response_file_is_bad_usage()
    {
        string file = Path.Combine(_directory, "missing.rsp");

        RunOutput run = await LoadGenerator.RunAsync("@" + file);

        Assert.Equal(Cli.BadUsage, run.ExitCode);
        Assert.Equal($"tinyserver-loadgen: error: Response file not found '{file}'.\n", run.Progress.ReplaceLineEndings("\n"));
        Assert.Equal("", run.Output);
    }

    [Theory]
    [InlineData("--conn", "--connect-batch", "--connect-timeout", "--connections")]
    [InlineData("--re", "--redial-backoff", "--redial-backoff-max", "--redis", "--reply-timeout", "--requests", "--requests-per-session", "--retry-after")]
    [InlineData("-c 5 --ti", "--timeout")]
    [InlineData("--json --unix /tmp/s --i", "--insecure")]
    public async Task The_suggest_directive_lists_the_options_that_complete_the_last_word(string typed, params string[] completions)
    {
        RunOutput run = await LoadGenerator.RunAsync(["[suggest]", .. typed.Split(' ')]);

        Assert.Equal(0, run.ExitCode);
        Assert.Equal(completions, run.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Theory]
    [InlineData("--conn", "--connect-batch", "--connect-timeout", "--connections")]
    [InlineData("-c 5 --ti", "--timeout")]
    [InlineData("--port 40001 --conn", "--connect-batch", "--connect-timeout", "--connections")]
    public async Task Bash_completes_an_option_through_the_shipped_completion_script(string typed, params string[] completions)
    {
        // The function that completion.bash registers for the program, called as bash calls it on TAB.
        string script = $$"""
            source '{{Path.Combine(AppContext.BaseDirectory, "completion.bash")}}'
            COMP_LINE='TinyServer.LoadGen {{typed}}'
            COMP_POINT=${#COMP_LINE}
            COMP_WORDS=($COMP_LINE)
            COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
            function=$(complete -p TinyServer.LoadGen | sed 's/.* -F \([^ ]*\) .*/\1/')
            "$function"
            printf '%s\n' "${COMPREPLY[@]}"
            """;

        (int exitCode, string output, string error) = await RunAsync("bash", "--norc", "-c", script);

        Assert.Equal("", error);
        Assert.Equal(0, exitCode);
        Assert.Equal(completions, output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    // The built program (its apphost) and completion.bash are copied beside the tests.
    private static string Program => Path.Combine(AppContext.BaseDirectory, "TinyServer.LoadGen");

    private static async Task<(int ExitCode, string Output, string Error)> RunAsync(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        start.Environment["PATH"] = AppContext.BaseDirectory + ":" + Environment.GetEnvironmentVariable("PATH");
        using Process process = Process.Start(start)!;
        Task<string> output = process.StandardOutput.ReadToEndAsync();
        Task<string> error = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync().WaitAsync(Timeouts.Run);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }

        return (process.ExitCode, await output, await error);
    }
}
