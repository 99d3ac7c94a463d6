using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace TinyServer.Server;

/// <summary>Builds the Kestrel host that serves TinyServer on raw TCP (no HTTP).</summary>
public static class TinyServerHost
{
    public static WebApplication Build(ServerOptions options, Action<ILoggingBuilder>? configureLogging = null)
    {
        WebApplicationBuilder builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions
        {
            ApplicationName = "TinyServer",
            ContentRootPath = AppContext.BaseDirectory,
        });
        var listeners = new Listeners();
        builder.WebHost.UseKestrelCore();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            foreach (IPAddress address in options.Bind)
            {
                kestrel.Listen(address, options.Port, listen =>
                {
                    listeners.All.Add(listen);
                    listen.UseConnectionHandler<LineConnectionHandler>();
                });
            }
        });
        builder.Services.AddSingleton<IConnectionListenerFactory, BackoffSocketTransport>();
        builder.Services.AddSingleton<ConnectionTracker>();
        builder.Services.AddSingleton<FileDescriptorLimit>();
        builder.Services.Configure<HostOptions>(host => host.ShutdownTimeout = TimeSpan.FromSeconds(options.ShutdownTimeoutSeconds));
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(listeners);
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Logging.SetMinimumLevel(options.LogLevel);
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        // A failed start is reported by Program as one line; the host would log it again with a stack trace.
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.None);
        configureLogging?.Invoke(builder.Logging);
        return builder.Build();
    }

    /// <summary>The endpoints Kestrel bound, with the real ports when port 0 was asked for. Valid once started.</summary>
    public static IReadOnlyList<IPEndPoint> BoundEndPoints(WebApplication app) =>
        [.. app.Services.GetRequiredService<Listeners>().All.Select(listen => listen.IPEndPoint).OfType<IPEndPoint>()];

    private sealed class Listeners
    {
        public List<ListenOptions> All { get; } = [];
    }
}
