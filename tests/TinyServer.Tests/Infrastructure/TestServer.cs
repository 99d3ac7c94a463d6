using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using TinyServer.Server;

namespace TinyServer.Tests.Infrastructure;

/// <summary>
/// The real Kestrel host, in process, on 127.0.0.1 and a free port. Nothing is printed; log entries at Warning and
/// above are kept in <see cref="Warnings"/>.
/// </summary>
public sealed class TestServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private TestServer(WebApplication app, IPEndPoint endPoint, ConcurrentQueue<string> warnings)
    {
        _app = app;
        EndPoint = endPoint;
        Warnings = warnings;
    }

    public IPEndPoint EndPoint { get; }

    public int Port => EndPoint.Port;

    public ConnectionTracker Tracker => _app.Services.GetRequiredService<ConnectionTracker>();

    /// <summary>This server's own <c>TinyServer</c> meter (each host has its own).</summary>
    public ServerMetrics Metrics => _app.Services.GetRequiredService<ServerMetrics>();

    /// <summary>Every log entry at Warning or above, with its exception.</summary>
    public ConcurrentQueue<string> Warnings { get; }

    /// <param name="options">The options; the port and addresses are replaced by a free port on 127.0.0.1.</param>
    /// <param name="time">The clock every timeout reads (a FakeTimeProvider the test advances); the system's by default. Kestrel's heartbeat stays real-time.</param>
    public static async Task<TestServer> StartAsync(ServerOptions? options = null, TimeProvider? time = null)
    {
        options ??= new ServerOptions();
        options = options with { Port = 0, Bind = [IPAddress.Loopback], TlsPort = options.TlsPort is null ? null : 0 };
        var warnings = new ConcurrentQueue<string>();
        WebApplication app = TinyServerHost.Build(options, logging =>
        {
            logging.SetMinimumLevel(LogLevel.Warning);
            logging.AddProvider(new CapturingProvider(warnings));
        }, time);
        await app.StartAsync().WaitAsync(Timeouts.Read);
        return new TestServer(app, TinyServerHost.BoundEndPoints(app).Single(), warnings)
        {
            TlsEndPoint = TinyServerHost.TlsEndPoints(app).SingleOrDefault(),
        };
    }

    /// <summary>The TLS endpoint on 127.0.0.1, when the options have a TLS port (always bound to port 0 here).</summary>
    public IPEndPoint? TlsEndPoint { get; private init; }

    /// <summary>
    /// Waits until <paramref name="accepted"/> connections were accepted and none is still being served
    /// (connections start and end asynchronously).
    /// </summary>
    public async Task WaitForAllClosedAsync(long accepted)
    {
        using var deadline = new CancellationTokenSource(Timeouts.Read);
        while (Tracker.Accepted < accepted || Tracker.Active != 0)
        {
            await Task.Delay(20, deadline.Token);
        }
    }

    /// <summary>Stops gracefully (as on SIGTERM) without disposing, so the server's services can still be read.</summary>
    public Task StopAsync() => _app.StopAsync().WaitAsync(Timeouts.Read);

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().WaitAsync(Timeouts.Read);
        await _app.DisposeAsync();
    }

    private sealed class CapturingProvider(ConcurrentQueue<string> entries) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new Logger(categoryName, entries);

        public void Dispose()
        {
        }

        private sealed class Logger(string category, ConcurrentQueue<string> entries) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                if (IsEnabled(logLevel))
                {
                    entries.Enqueue($"{logLevel} {category}: {formatter(state, exception)} {exception}");
                }
            }
        }
    }
}
