using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.External;

/// <summary>
/// socat relays standard input to the server and half-closes at its end. After that it waits at most <c>-t</c>
/// seconds for the server to close (0.5 by default, too tight for a loaded machine), so the tests give it 10.
/// </summary>
[Trait("Tier", "process")]
public class SocatTests
{
    [Theory]
    [InlineData("-", "Lf")]
    [InlineData("-", "CrLf")]
    [InlineData("-", "HalfCloseLastLineWithoutLf")]
    [InlineData("-", "Errors")]
    [InlineData("STDIO", "Lf")]
    [InlineData("STDIO", "HalfCloseLastLineWithoutLf")]
    public async Task Socat_session(string stdio, string session)
    {
        string socat = ProcessRunner.RequireTool("socat");
        (string input, string[] expected) = Sessions.Get(session);
        await using TestServer server = await TestServer.StartAsync();

        ProcessResult result = await ProcessRunner.RunAsync(socat, ["-t", "10", stdio, $"TCP:127.0.0.1:{server.Port}"], input);

        Sessions.AssertOutput(result, expected);
    }
}
