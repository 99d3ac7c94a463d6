using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using TinyServer.Tests.Infrastructure;
using static TinyServer.Tests.Cli.ClientTests;

namespace TinyServer.Tests.Cli;

/// <summary>What System.CommandLine gives the client: --version, response files (@FILE), completions, the limits.</summary>
[Trait("Tier", "process")]
public sealed class ClientCommandLineTests
{
    [Fact]
    public async Task Version_prints_the_programs_version_and_exits_0()
    {
        string? expected = FileVersionInfo.GetVersionInfo(BuiltPrograms.ClientDll).ProductVersion;
        Assert.False(string.IsNullOrEmpty(expected));

        ProcessResult result = await RunClientAsync(standardInput: "", "--version");

        Assert.Equal(0, result.ExitCode);
        Assert.Equal(expected + "\n", result.StandardOutput);
        Assert.Equal("", result.StandardError);
    }

    [Fact]
    public async Task A_response_file_gives_options_the_server_and_commands()
    {
        await using TestServer server = await TestServer.StartAsync();
        string file = Path.Combine(Path.GetTempPath(), $"tinyserver-client-{Guid.NewGuid():N}.rsp");
        await File.WriteAllTextAsync(file, $"# the test server\n--timeout 5\n127.0.0.1 {server.Port}\n\"ECHO hi  there\"\n");
        try
        {
            ProcessResult result = await RunClientAsync(standardInput: "", $"@{file}", "HELP");

            Assert.Equal(0, result.ExitCode);
            Assert.Equal(
                Lines(
                    $"CONNECT to 127.0.0.1:{server.Port}",
                    "<- WELCOME, I'm TinyServer not pressure",
                    "-> ECHO hi  there",
                    "<- ECHO hi  there",
                    "-> HELP",
                    "<- HELP TIME | ECHO <text> | HELP | QUIT",
                    "-> QUIT",
                    "<- BYE"),
                result.StandardOutput);
            Assert.Equal("", result.StandardError);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task A_missing_response_file_is_bad_usage()
    {
        string file = Path.Combine(Path.GetTempPath(), $"tinyserver-client-{Guid.NewGuid():N}.rsp");

        ProcessResult result = await RunClientAsync(standardInput: "", $"@{file}");

        Assert.Equal(2, result.ExitCode);
        Assert.Equal("", result.StandardOutput);
        Assert.StartsWith("tinyserver-client: ", result.StandardError, StringComparison.Ordinal);
        Assert.Contains(file, result.StandardError, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--ti", "--timeout")]
    [InlineData("--i", "--insecure|--interactive")]
    [InlineData("127.0.0.1 40000 E", "ECHO|HELP|--demo|--help|--version|TIME|--insecure|--interactive|--timeout")]
    [InlineData("--unix /tmp/s.sock Q", "QUIT")]
    [InlineData("T", "--timeout|--tls|--interactive")] // HOST goes here, not a command.
    [InlineData("--timeout 5 127.0.0.1 40000 --t", "--tls")] // An option given once is not offered again.
    public async Task The_suggest_directive_completes_options_and_commands(string commandLine, string expected)
    {
        // As dotnet-suggest asks: the whole command line as one argument, the cursor at its end.
        ProcessResult result = await RunClientAsync(standardInput: "", $"[suggest:{commandLine.Length}]", commandLine);

        Assert.Equal(0, result.ExitCode);
        Assert.Equal(expected.Split('|').Order(StringComparer.Ordinal), result.OutputLines.Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData("-h")]
    [InlineData("-?")]
    [InlineData("--help")]
    public async Task Every_help_switch_prints_the_help_with_the_exit_codes(string option)
    {
        ProcessResult result = await RunClientAsync(standardInput: "", option);

        Assert.Equal(0, result.ExitCode);
        Assert.Contains("--timeout <SECONDS>", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("more than 0 and at most 3600; input may take its time [default: 10]", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("the server's port (1-65535)", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("Exit codes: 0 ok, 1 an ERROR reply, 2 bad usage", result.StandardOutput, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--timeout|0.001", true)]
    [InlineData("--timeout|3599.999", true)]
    [InlineData("--timeout|3600", true)]
    [InlineData("--timeout|3600.001", false)]
    [InlineData("--timeout|0", false)]
    [InlineData("--timeout|-1", false)]
    [InlineData("--timeout|1|--timeout|2", false)] // Given twice: which one?
    public async Task The_timeout_is_more_than_0_and_at_most_3600_seconds(string timeout, bool accepted)
    {
        int port = RefusedPort(out Socket bound);
        using (bound)
        {
            ProcessResult result = await RunClientAsync(standardInput: "", [.. timeout.Split('|'), "127.0.0.1", port.ToString(), "TIME"]);

            if (accepted)
            {
                // It tried to connect: refused (3), or, with 1 ms, maybe timed out first (4).
                Assert.Contains(result.ExitCode, new[] { 3, 4 });
                Assert.Equal(Lines($"CONNECT to 127.0.0.1:{port}"), result.StandardOutput);
            }
            else
            {
                Assert.Equal(2, result.ExitCode);
                Assert.Equal("", result.StandardOutput);
                Assert.StartsWith("tinyserver-client: ", result.StandardError, StringComparison.Ordinal);
            }
        }
    }

    [Theory]
    [InlineData("1", true)]
    [InlineData("65534", true)]
    [InlineData("65535", true)]
    [InlineData("65536", false)]
    [InlineData("0", false)]
    [InlineData("-1", false)]
    public async Task The_port_is_from_1_to_65535(string port, bool accepted)
    {
        ProcessResult result = await RunClientAsync(standardInput: "", "--timeout", "2", "127.0.0.1", port, "TIME");

        if (accepted)
        {
            Assert.NotEqual(2, result.ExitCode); // Whatever is at that port: it tried to connect.
            Assert.StartsWith($"CONNECT to 127.0.0.1:{port}\n", result.StandardOutput, StringComparison.Ordinal);
        }
        else
        {
            Assert.Equal(2, result.ExitCode);
            Assert.Equal("", result.StandardOutput);
            Assert.StartsWith($"tinyserver-client: ", result.StandardError, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task After_host_and_port_a_word_like_an_option_is_a_command()
    {
        await using TestServer server = await TestServer.StartAsync();

        ProcessResult result = await RunClientAsync(standardInput: "", "127.0.0.1", server.Port.ToString(), "--frobnicate");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("-> --frobnicate\n<- ERROR UNKNOWN_COMMAND\n", result.StandardOutput, StringComparison.Ordinal);
    }

    /// <summary>A port bound but not listening: connecting is refused at once, and no other program can take it meanwhile.</summary>
    private static int RefusedPort(out Socket socket)
    {
        socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }
}
