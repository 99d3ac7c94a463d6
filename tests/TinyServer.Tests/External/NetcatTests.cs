using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.External;

/// <summary>netcat-openbsd: <c>nc -N</c> sends its standard input, half-closes at its end, prints what the server sends.</summary>
[Trait("Tier", "process")]
public class NetcatTests
{
    [Theory]
    [InlineData("Lf")]
    [InlineData("CrLf")]
    [InlineData("HalfCloseLastLineWithoutLf")]
    [InlineData("Errors")]
    public async Task Nc_session(string session)
    {
        string nc = ProcessRunner.RequireTool("nc");
        (string input, string[] expected) = Sessions.Get(session);
        await using TestServer server = await TestServer.StartAsync();

        ProcessResult result = await ProcessRunner.RunAsync(nc, ["-N", "127.0.0.1", server.Port.ToString()], input);

        Sessions.AssertOutput(result, expected);
    }
}
