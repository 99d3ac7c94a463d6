using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.External;

/// <summary>The system telnet client, driven by expect through a terminal: see telnet-session.exp.</summary>
[Trait("Tier", "process")]
public class TelnetTests
{
    [Fact]
    public async Task Telnet_session_with_ctrl_c()
    {
        string expect = ProcessRunner.RequireTool("expect");
        ProcessRunner.RequireTool("telnet");
        string script = Path.Combine(AppContext.BaseDirectory, "External", "telnet-session.exp");
        await using TestServer server = await TestServer.StartAsync();

        ProcessResult result = await ProcessRunner.RunAsync(expect, [script, "127.0.0.1", server.Port.ToString()]);

        Assert.True(result.ExitCode == 0, $"expect exited with {result.ExitCode}\n--- stdout ---\n{result.StandardOutput}\n--- stderr ---\n{result.StandardError}");
    }
}
