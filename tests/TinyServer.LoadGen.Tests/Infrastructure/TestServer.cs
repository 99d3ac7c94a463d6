using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
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

    /// <summary>Connections open and greeted now.</summary>
    public long ActiveConnections => _app.Services.GetRequiredService<ConnectionTracker>().Active;

    /// <summary>The TLS port, when the options asked for TLS.</summary>
    public int? TlsPort { get; private init; }

    /// <param name="options">Settings beyond the defaults (TLS, a Unix socket); the TCP endpoint is always 127.0.0.1 on a free port.</param>
    public static async Task<TestServer> StartAsync(ServerOptions? options = null)
    {
        options = (options ?? new ServerOptions()) with { Port = 0, Bind = [IPAddress.Loopback] };
        WebApplication app = TinyServerHost.Build(options, logging => { });
        await app.StartAsync().WaitAsync(Timeouts.Io);
        return new TestServer(app, TinyServerHost.BoundEndPoints(app).Single().Port)
        {
            TlsPort = TinyServerHost.TlsEndPoints(app).SingleOrDefault()?.Port,
        };
    }

    /// <summary>
    /// Runs the load <paramref name="start"/> starts and, once <paramref name="connections"/> connections are open and
    /// some load has run, stops this server (disposing it); returns the run.
    /// </summary>
    public async Task<RunOutput> StopDuringAsync(Func<Task<RunOutput>> start, long connections)
    {
        Task<RunOutput> load;
        try
        {
            load = start();
            using var connected = new CancellationTokenSource(Timeouts.Io);
            while (ActiveConnections < connections)
            {
                await Task.Delay(10, connected.Token);
            }

            await Task.Delay(TimeSpan.FromSeconds(0.3)); // Some load.
        }
        finally
        {
            await DisposeAsync();
        }

        return await load;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().WaitAsync(Timeouts.Io);
        await _app.DisposeAsync();
    }
}
