using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Server;

public class SmokeTests
{
    [Fact]
    public async Task Banner_then_time()
    {
        await using TestServer server = await TestServer.StartAsync();
        await using RawConnection connection = await RawConnection.OpenAsync(server.EndPoint);
        await connection.SendAsync("TIME\n");
        Assert.StartsWith("TIME ", await connection.ReadLineAsync());
        Assert.True(File.Exists(BuiltPrograms.ClientDll));
    }
}
