using System.ComponentModel.DataAnnotations;
using System.Net;
using System.Reflection;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Options;
using TinyServer.Server;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Cli;

/// <summary>
/// The server's configuration through the platform: System.CommandLine's --version, response files and [suggest]
/// completions; the sources' precedence (file &lt; environment &lt; command line), lists included; the help text that
/// reads each range from its attribute; and the options machinery's ValidateOnStart.
/// </summary>
[Trait("Tier", "process")]
public sealed class ServerConfigurationTests
{
    private static readonly Dictionary<string, string> NoEnvironment = [];

    [Fact]
    public async Task Version_prints_the_server_version_and_exits_0()
    {
        ProcessResult result = await RunServerAsync(["--version"]);

        Assert.Equal(0, result.ExitCode);
        Assert.Equal("", result.StandardError);
        string version = typeof(ServerOptions).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion;
        Assert.Equal(version, Assert.Single(result.OutputLines));
    }

    [Fact]
    public async Task Completions_come_from_the_suggest_directive()
    {
        ProcessResult result = await RunServerAsync(["[suggest:7]", "--tls-p"]);

        Assert.Equal(0, result.ExitCode);
        Assert.Equal(["--tls-port"], result.OutputLines);

        result = await RunServerAsync(["[suggest:9]", "--max-con"]);
        Assert.Equal(["--max-connections", "--max-connections-per-address"], result.OutputLines);
    }

    [Fact]
    public async Task A_response_file_holds_options_and_a_bad_value_in_it_exits_2()
    {
        string file = Path.GetTempFileName();
        try
        {
            await File.WriteAllLinesAsync(file, ["--max-line-length 20", "--bind 127.0.0.1", "--bind ::1", "--idle-timeout 7"]);
            ServerOptions options = ServerOptionsLoader.Load(["@" + file, "--port", "0"], NoEnvironment, settingsFile: null)!;
            Assert.Equal((0, 20, 7), (options.Port, options.MaxLineLength, options.IdleTimeoutSeconds));
            Assert.Equal([IPAddress.Loopback, IPAddress.IPv6Loopback], options.Bind);

            await File.WriteAllLinesAsync(file, ["--max-line-length 15"]);
            ProcessResult result = await RunServerAsync(["@" + file]);
            Assert.Equal(2, result.ExitCode);
            Assert.Equal("tinyserver: error: --max-line-length on the command line: '15' is not a line length: use 16-1048576 bytes", result.StandardError.TrimEnd());
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void The_command_line_beats_the_environment_which_beats_the_file_which_beats_the_defaults()
    {
        string file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, """{ "Port": 2000, "MaxLineLength": 100, "IdleTimeout": 60, "Bind": ["127.0.0.2", "127.0.0.3", "127.0.0.4"] }""");
            var environment = new Dictionary<string, string> { ["TINYSERVER_MAX_LINE_LENGTH"] = "200", ["TINYSERVER_IDLE_TIMEOUT"] = "70", ["TINYSERVER_BIND"] = "::1" };

            ServerOptions fileOnly = ServerOptionsLoader.Load([], NoEnvironment, file)!;
            Assert.Equal((2000, 100, 60, 2), (fileOnly.Port, fileOnly.MaxLineLength, fileOnly.IdleTimeoutSeconds, fileOnly.LingerTimeoutSeconds));
            Assert.Equal(["127.0.0.2", "127.0.0.3", "127.0.0.4"], fileOnly.Bind.Select(a => a.ToString()));

            ServerOptions withEnvironment = ServerOptionsLoader.Load([], environment, file)!;
            Assert.Equal((2000, 200, 70), (withEnvironment.Port, withEnvironment.MaxLineLength, withEnvironment.IdleTimeoutSeconds));
            Assert.Equal([IPAddress.IPv6Loopback], withEnvironment.Bind); // the whole list, not merged item by item with the file's

            ServerOptions withArgs = ServerOptionsLoader.Load(["--idle-timeout", "80", "--bind", "127.0.0.5", "--bind", "127.0.0.6"], environment, file)!;
            Assert.Equal((2000, 200, 80), (withArgs.Port, withArgs.MaxLineLength, withArgs.IdleTimeoutSeconds));
            Assert.Equal(["127.0.0.5", "127.0.0.6"], withArgs.Bind.Select(a => a.ToString()));

            File.WriteAllText(file, """{ "MaxConnections": 0 }""");
            OptionsException error = Assert.Throws<OptionsException>(() => ServerOptionsLoader.Load([], NoEnvironment, file));
            Assert.Equal($"'MaxConnections' in {file}: '0' is not a connection count: use 1-1000000", error.Message);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task The_help_shows_each_option_with_the_range_of_its_attribute_its_default_and_its_variable()
    {
        ProcessResult result = await RunServerAsync(["--help"]);

        Assert.Equal(0, result.ExitCode);
        foreach (Setting setting in ServerCommand.All)
        {
            string line = Assert.Single(result.OutputLines, l => l.StartsWith($"  {setting.Switch} ", StringComparison.Ordinal));
            Assert.Contains($"; default {setting.Default}; env {setting.EnvironmentVariable}", line, StringComparison.Ordinal);
            if (setting.Property is { } property)
            {
                var range = typeof(ServerOptions).GetProperty(property)!.GetCustomAttribute<RangeAttribute>()!;
                Assert.Contains($"({range.Minimum}-{range.Maximum}", line, StringComparison.Ordinal);
            }
        }

        Assert.Contains($"({ServerOptions.MinLineLengthLimit}-{ServerOptions.MaxLineLengthLimit})", Assert.Single(result.OutputLines, l => l.StartsWith("  --max-line-length ", StringComparison.Ordinal)), StringComparison.Ordinal);
        Assert.Contains($"({ServerOptions.MinPort}-{ServerOptions.MaxPort}, or 0 for any free port)", Assert.Single(result.OutputLines, l => l.StartsWith("  --port ", StringComparison.Ordinal)), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Options_built_in_code_are_validated_when_the_host_starts()
    {
        await using WebApplication app = TinyServerHost.Build(new ServerOptions { Port = 0, Bind = [IPAddress.Loopback], MaxLineLength = 15, ProxyHeaderTimeoutSeconds = 61 }, logging => { });

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync().WaitAsync(Timeouts.Read));
        Assert.Equal(2, error.Failures.Count());
        Assert.Contains(error.Failures, f => f.StartsWith("MaxLineLength: ", StringComparison.Ordinal));
        Assert.Contains(error.Failures, f => f.StartsWith("ProxyHeaderTimeoutSeconds: ", StringComparison.Ordinal));
        Assert.All(TinyServerHost.BoundEndPoints(app), endPoint => Assert.Equal(0, endPoint.Port)); // nothing was bound
    }

    private static Task<ProcessResult> RunServerAsync(string[] arguments) =>
        ProcessRunner.RunAsync(BuiltPrograms.Dotnet, [BuiltPrograms.ServerDll, .. arguments]);
}
