using System.Text.RegularExpressions;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Cli;

/// <summary>The command-line client, run as <c>dotnet TinyServer.Client.dll</c> against the in-process server.</summary>
[Trait("Tier", "process")]
public partial class ClientTests
{
    private const string Banner = "<- WELCOME, I'm TinyServer not pressure";
    private const string HelpReply = "<- HELP TIME | ECHO <text> | HELP | QUIT";

    [Fact]
    public async Task Without_commands_and_with_empty_stdin_it_runs_the_demo()
    {
        await using TestServer server = await TestServer.StartAsync();

        ProcessResult result = await RunClientAsync(standardInput: "", "127.0.0.1", server.Port.ToString());

        Assert.Equal(0, result.ExitCode);
        Assert.Equal(Demo(server.Port), WithTimePlaceholder(result.StandardOutput));
        Assert.Equal("", result.StandardError);
    }

    [Fact]
    public async Task With_demo_option_it_runs_the_demo_and_ignores_stdin()
    {
        await using TestServer server = await TestServer.StartAsync();

        ProcessResult result = await RunClientAsync(standardInput: "FOO\nHELP\n", "--demo", "127.0.0.1", server.Port.ToString());

        Assert.Equal(0, result.ExitCode);
        Assert.Equal(Demo(server.Port), WithTimePlaceholder(result.StandardOutput));
        Assert.Equal("", result.StandardError);
    }

    [Fact]
    public async Task Commands_as_arguments_are_sent_in_order_then_quit()
    {
        await using TestServer server = await TestServer.StartAsync();

        ProcessResult result = await RunClientAsync(standardInput: "", "127.0.0.1", server.Port.ToString(), "ECHO a  b", "HELP");

        Assert.Equal(0, result.ExitCode);
        Assert.Equal(
            Lines(
                $"CONNECT to 127.0.0.1:{server.Port}",
                Banner,
                "-> ECHO a  b",
                "<- ECHO a  b",
                "-> HELP",
                HelpReply,
                "-> QUIT",
                "<- BYE"),
            result.StandardOutput);
        Assert.Equal("", result.StandardError);
    }

    [Fact]
    public async Task An_explicit_quit_is_not_sent_twice_and_ends_the_session()
    {
        await using TestServer server = await TestServer.StartAsync();

        ProcessResult result = await RunClientAsync(standardInput: "", "127.0.0.1", server.Port.ToString(), "HELP", "quit", "TIME");

        Assert.Equal(0, result.ExitCode);
        Assert.Equal(
            Lines($"CONNECT to 127.0.0.1:{server.Port}", Banner, "-> HELP", HelpReply, "-> quit", "<- BYE"),
            result.StandardOutput);
    }

    [Fact]
    public async Task Commands_from_stdin_with_crlf_and_blank_lines_are_sent_then_quit()
    {
        await using TestServer server = await TestServer.StartAsync();

        // CRLF endings, blank and spaces-only lines (skipped), an LF line, and a last line without any line ending.
        ProcessResult result = await RunClientAsync(standardInput: "ECHO one\r\n\r\n\n   \n \t\r\nECHO two\nHELP", "127.0.0.1", server.Port.ToString());

        Assert.Equal(0, result.ExitCode);
        Assert.Equal(
            Lines(
                $"CONNECT to 127.0.0.1:{server.Port}",
                Banner,
                "-> ECHO one",
                "<- ECHO one",
                "-> ECHO two",
                "<- ECHO two",
                "-> HELP",
                HelpReply,
                "-> QUIT",
                "<- BYE"),
            result.StandardOutput);
        Assert.Equal("", result.StandardError);
    }

    [Theory]
    [InlineData("HELP\nQUIT\n")]
    [InlineData("HELP\r\nQUIT\r\n")]
    [InlineData("HELP\n")] // End of input (Ctrl-D at a terminal) sends QUIT.
    public async Task Interactive_prints_a_prompt_and_each_reply_until_quit_or_end_of_input(string standardInput)
    {
        await using TestServer server = await TestServer.StartAsync();

        ProcessResult result = await RunClientAsync(standardInput, "--interactive", "127.0.0.1", server.Port.ToString());

        Assert.Equal(0, result.ExitCode);
        Assert.Equal(Lines($"CONNECT to 127.0.0.1:{server.Port}", Banner, "> " + HelpReply, "> <- BYE"), result.StandardOutput);
        Assert.Equal("", result.StandardError);
    }

    [Fact]
    public async Task Interactive_with_an_error_reply_exits_1()
    {
        await using TestServer server = await TestServer.StartAsync();

        ProcessResult result = await RunClientAsync("FOO\n\nQUIT\n", "-i", "127.0.0.1", server.Port.ToString());

        Assert.Equal(1, result.ExitCode);
        Assert.Equal(Lines($"CONNECT to 127.0.0.1:{server.Port}", Banner, "> <- ERROR UNKNOWN_COMMAND", "> > <- BYE"), result.StandardOutput);
    }

    [Fact]
    public async Task Help_option_prints_usage_and_exits_0()
    {
        ProcessResult result = await RunClientAsync(standardInput: "", "--help");

        Assert.Equal(0, result.ExitCode);
        Assert.Contains("Usage:\n  TinyServer.Client ", result.StandardOutput, StringComparison.Ordinal);
        foreach (string option in new[] { "--timeout", "--interactive", "--demo", "Exit codes:" })
        {
            Assert.Contains(option, result.StandardOutput, StringComparison.Ordinal);
        }
    }

    internal static Task<ProcessResult> RunClientAsync(string standardInput, params string[] arguments) =>
        ProcessRunner.RunAsync(BuiltPrograms.Dotnet, [BuiltPrograms.ClientDll, .. arguments], standardInput);

    /// <summary>The lines, each ended by LF, as the client writes them.</summary>
    internal static string Lines(params string[] lines) => string.Concat(lines.Select(line => line + "\n"));

    private static string Demo(int port) => Lines(
        $"CONNECT to 127.0.0.1:{port}",
        Banner,
        "-> TIME",
        "<- TIME <iso>",
        "-> QUIT",
        "<- BYE",
        $"CONNECT to 127.0.0.1:{port}",
        Banner,
        "-> ECHO Hello from client",
        "<- ECHO Hello from client",
        "-> QUIT",
        "<- BYE");

    /// <summary>Replaces the one ISO 8601 timestamp of a TIME reply by "&lt;iso&gt;", failing if there is not exactly one.</summary>
    private static string WithTimePlaceholder(string output)
    {
        Assert.Single(TimeReply().Matches(output));
        return TimeReply().Replace(output, "<- TIME <iso>");
    }

    [GeneratedRegex(@"^<- TIME \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$", RegexOptions.Multiline)]
    private static partial Regex TimeReply();
}
