using System.Net;
using Microsoft.AspNetCore.Builder;
using TinyServer.Server;

namespace TinyServer.LoadGen.Tests.Infrastructure;

/// <summary>The real TinyServer (Kestrel host), in process, on 127.0.0.1 and a free port. No log output.</summary>
public sealed class TestServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private TestServer(WebApplication app, int port)
    {
        _app = app;
        Port = port;
    }

    public int Port { get; }

    public static async Task<TestServer> StartAsync()
    {
        var options = new ServerOptions { Port = 0, Bind = [IPAddress.Loopback] };
        WebApplication app = TinyServerHost.Build(options, logging => { });
        await app.StartAsync().WaitAsync(Timeouts.Io);
        return new TestServer(app, TinyServerHost.BoundEndPoints(app).Single().Port);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().WaitAsync(Timeouts.Io);
        await _app.DisposeAsync();
    }
}
