using System.Net;
using System.Net.Sockets;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Cli;

/// <summary>The server program, run as <c>dotnet TinyServer.Server.dll</c>: options, environment, errors, logging.</summary>
[Trait("Tier", "process")]
public class ServerProgramTests
{
    private static readonly string[] AnyPortOnLoopback = ["--port", "0", "--bind", "127.0.0.1"];

    [Fact]
    public async Task Starts_logs_where_it_listens_and_answers()
    {
        await using ServerProcess server = await ServerProcess.StartAsync(AnyPortOnLoopback);

        Assert.NotEqual(0, server.EndPoint.Port);
        await AssertAnswersTimeAsync(server.EndPoint);
    }

    [Theory]
    [InlineData("--port|80", "'80' is not a valid port")]
    [InlineData("--port|1024", "'1024' is not a valid port")]
    [InlineData("--port|49152", "'49152' is not a valid port")]
    [InlineData("--port|abc", "'abc' is not a valid port")]
    [InlineData("--port|-1", "'-1' is not a valid port")]
    [InlineData("--port=", "'' is not a valid port")]
    [InlineData("--max-line-length|15", "'15' is not a line length")]
    [InlineData("--max-line-length|1048577", "'1048577' is not a line length")]
    [InlineData("--bind|nonsense", "'nonsense' is not a list of IP addresses")]
    [InlineData("--log-level|loud", "'loud' is not a log level")]
    [InlineData("--log-level|2", "'2' is not a log level")]
    [InlineData("--frobnicate", "unknown option '--frobnicate'")]
    [InlineData("--port|0|--port|0", "option --port is given twice")]
    [InlineData("--port", "option --port needs a value")]
    [InlineData("--proxy-protocol", "--proxy-protocol needs at least one --trusted-proxy")]
    [InlineData("--proxy-protocol=maybe|--trusted-proxy|10.0.0.1", "'maybe' is not true or false")]
    [InlineData("--proxy-protocol|--trusted-proxy|10.0.0.1/8", "'10.0.0.1/8' is not a list of IP addresses or CIDR networks")]
    [InlineData("--proxy-protocol|--trusted-proxy|10.0.0.0/33", "'10.0.0.0/33' is not a list of IP addresses or CIDR networks")]
    [InlineData("--proxy-protocol|--trusted-proxy|balancer", "'balancer' is not a list of IP addresses or CIDR networks")]
    [InlineData("--trusted-proxy|10.0.0.1", "--trusted-proxy is set but --proxy-protocol is off")]
    [InlineData("--proxy-header-timeout|2", "'2' is not a timeout: use 3-60 seconds")]
    [InlineData("--max-connections-per-address|-1", "'-1' is not a connection count")]
    public async Task A_bad_option_exits_2_with_one_line_and_no_stack_trace(string arguments, string expected)
    {
        ProcessResult result = await RunServerAsync(arguments.Split('|'));

        Assert.Equal(2, result.ExitCode);
        Assert.Equal("", result.StandardOutput);
        string line = Assert.Single(result.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("tinyserver: error: ", line, StringComparison.Ordinal);
        Assert.Contains(expected, line, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.StandardError, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1025)]
    [InlineData(49151)]
    public async Task The_lowest_and_highest_ports_are_accepted(int port)
    {
        string[] arguments = ["--port", port.ToString(), "--bind", "127.0.0.1"];
        if (IsFree(port))
        {
            await using ServerProcess server = await ServerProcess.StartAsync(arguments);
            Assert.Equal(port, server.EndPoint.Port);
            await AssertAnswersTimeAsync(server.EndPoint);
        }
        else
        {
            // Someone else holds the port: the option is still accepted, so the error is "cannot listen" (exit 1), not exit 2.
            ProcessResult result = await RunServerAsync(arguments);
            Assert.Equal(1, result.ExitCode);
            Assert.StartsWith("tinyserver: error: cannot listen: ", result.StandardError, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_port_in_use_exits_1_with_one_line_and_no_stack_trace()
    {
        // Held by a plain listener (no SO_REUSEADDR/SO_REUSEPORT); PortInUseTests holds it with a first server.
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            int port = ((IPEndPoint)listener.LocalEndpoint).Port;

            ProcessResult result = await RunServerAsync(["--port", port.ToString(), "--bind", "127.0.0.1"]);

            Assert.Equal(1, result.ExitCode);
            string line = Assert.Single(result.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.StartsWith("tinyserver: error: cannot listen: ", line, StringComparison.Ordinal);
            Assert.Contains("address already in use", line, StringComparison.Ordinal);
            Assert.Contains($"127.0.0.1:{port}", line, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", result.StandardError + result.StandardOutput, StringComparison.Ordinal);
        }
        finally
        {
            listener.Stop();
        }
    }

    [Fact]
    public async Task Environment_variables_set_the_options()
    {
        var environment = new Dictionary<string, string>
        {
            ["TINYSERVER_PORT"] = "0",
            ["TINYSERVER_BIND"] = "127.0.0.1",
            ["TINYSERVER_MAX_LINE_LENGTH"] = "20",
        };
        await using ServerProcess server = await ServerProcess.StartAsync([], environment);

        await server.WaitForLineAsync("max line length 20 bytes");
        await using (RawConnection connection = await RawConnection.OpenAsync(server.EndPoint))
        {
            await connection.SendAsync("ECHO 012345678901234\n"); // 20 bytes: the limit
            Assert.Equal("ECHO 012345678901234", await connection.ReadLineAsync());
        }

        await using (RawConnection connection = await RawConnection.OpenAsync(server.EndPoint))
        {
            await connection.SendAsync("ECHO 0123456789012345\n"); // 21 bytes
            Assert.Equal("ERROR LINE_TOO_LONG", await connection.ReadLineAsync());
            await connection.AssertClosedAsync();
        }
    }

    [Fact]
    public async Task The_command_line_overrides_the_environment()
    {
        var environment = new Dictionary<string, string>
        {
            ["TINYSERVER_PORT"] = "80",
            ["TINYSERVER_BIND"] = "nonsense",
            ["TINYSERVER_MAX_LINE_LENGTH"] = "20",
            ["TINYSERVER_LOG_LEVEL"] = "loud",
        };
        await using ServerProcess server = await ServerProcess.StartAsync([.. AnyPortOnLoopback, "--max-line-length", "30", "--log-level", "Information"], environment);

        await server.WaitForLineAsync("max line length 30 bytes");
        await using RawConnection connection = await RawConnection.OpenAsync(server.EndPoint);
        await connection.SendAsync("ECHO 0123456789012345678901234\n"); // 30 bytes
        Assert.Equal("ECHO 0123456789012345678901234", await connection.ReadLineAsync());
    }

    [Fact]
    public async Task A_bad_environment_variable_exits_2_and_names_it()
    {
        ProcessResult result = await RunServerAsync([], new Dictionary<string, string> { ["TINYSERVER_PORT"] = "80" });

        Assert.Equal(2, result.ExitCode);
        string line = Assert.Single(result.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("tinyserver: error: environment variable TINYSERVER_PORT: '80' is not a valid port", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Help_exits_0_and_lists_every_option()
    {
        ProcessResult result = await RunServerAsync(["--help"]);

        Assert.Equal(0, result.ExitCode);
        Assert.Equal("", result.StandardError);
        Assert.Contains("Usage:\n  TinyServer.Server [options]\n", result.StandardOutput, StringComparison.Ordinal);
        foreach (string expected in new[]
        {
            "--port", "--bind", "--max-line-length", "--log-level", "--help", "--version",
            "TINYSERVER_PORT", "TINYSERVER_BIND", "TINYSERVER_MAX_LINE_LENGTH", "TINYSERVER_LOG_LEVEL",
        })
        {
            Assert.Contains(expected, result.StandardOutput, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task At_debug_level_each_connection_is_logged_when_opened_and_closed()
    {
        await using ServerProcess server = await ServerProcess.StartAsync([.. AnyPortOnLoopback, "--log-level", "Debug"]);

        await QuitOneConnectionAsync(server.EndPoint);

        Assert.Contains(" opened", await server.WaitForLineAsync("Connection "), StringComparison.Ordinal);
        Assert.Contains(" closed: Quit, 1 requests", await server.WaitForLineAsync("Connection "), StringComparison.Ordinal);
    }

    [Fact]
    public async Task At_the_default_level_no_connection_is_logged()
    {
        await using ServerProcess server = await ServerProcess.StartAsync(AnyPortOnLoopback);

        await QuitOneConnectionAsync(server.EndPoint);

        // A graceful stop flushes the logger: afterwards the output holds every line the server logged.
        Assert.Equal(0, await server.StopAsync());
        Assert.Equal("", await server.StandardErrorAfterExitAsync());
        Assert.Collection(
            server.Output,
            line => Assert.EndsWith($"Listening on 127.0.0.1:{server.EndPoint.Port}", line, StringComparison.Ordinal),
            line => Assert.Contains("File descriptor limit", line, StringComparison.Ordinal),
            line => Assert.EndsWith("TinyServer ready: max line length 16384 bytes", line, StringComparison.Ordinal),
            line => Assert.EndsWith("Stopped after 1 connections (0 more turned away at the limit): 0 connections drained, 0 aborted", line, StringComparison.Ordinal));
    }

    private static Task<ProcessResult> RunServerAsync(string[] arguments, IDictionary<string, string>? environment = null) =>
        ProcessRunner.RunAsync(BuiltPrograms.Dotnet, [BuiltPrograms.ServerDll, .. arguments], environment: environment);

    private static async Task AssertAnswersTimeAsync(IPEndPoint endPoint)
    {
        await using RawConnection connection = await RawConnection.OpenAsync(endPoint);
        await connection.SendAsync("TIME\n");
        Assert.Matches(@"^TIME \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$", await connection.ReadLineAsync());
    }

    private static async Task QuitOneConnectionAsync(IPEndPoint endPoint)
    {
        await using RawConnection connection = await RawConnection.OpenAsync(endPoint);
        await connection.SendAsync("QUIT\n");
        Assert.Equal("BYE", await connection.ReadLineAsync());
        await connection.AssertClosedAsync();
    }

    /// <summary>True when nothing holds <paramref name="port"/> on 127.0.0.1 (bound and released at once).</summary>
    private static bool IsFree(int port)
    {
        try
        {
            var probe = new TcpListener(IPAddress.Loopback, port);
            probe.Start();
            probe.Stop();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
