using TinyServer.Server;

namespace TinyServer.LoadGen.Tests.Infrastructure;

/// <summary>
/// A test class with a real server of its own (<see cref="TestServer"/>, in process), started before each test and
/// stopped after it; <see cref="Options"/> gives settings beyond the defaults.
/// </summary>
public abstract class ServerTests : IAsyncLifetime
{
    protected TestServer Server { get; private set; } = null!;

    protected virtual ServerOptions? Options => null;

    public async Task InitializeAsync() => Server = await TestServer.StartAsync(Options);

    public async Task DisposeAsync() => await Server.DisposeAsync();
}
