using System.Net;
using Microsoft.AspNetCore.Builder;
using TinyServer.Server;

namespace TinyServer.Tests.Infrastructure;

/// <summary>The real Kestrel host, in process, on 127.0.0.1 and a free port. No log output.</summary>
public sealed class TestServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private TestServer(WebApplication app, IPEndPoint endPoint)
    {
        _app = app;
        EndPoint = endPoint;
    }

    public IPEndPoint EndPoint { get; }

    public int Port => EndPoint.Port;

    public static async Task<TestServer> StartAsync(ServerOptions? options = null)
    {
        options ??= new ServerOptions();
        options = options with { Port = 0, Bind = [IPAddress.Loopback] };
        WebApplication app = TinyServerHost.Build(options, logging => { });
        await app.StartAsync().WaitAsync(Timeouts.Read);
        return new TestServer(app, TinyServerHost.BoundEndPoints(app).Single());
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().WaitAsync(Timeouts.Read);
        await _app.DisposeAsync();
    }
}
