using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;

namespace TinyServer.Server;

/// <summary>Builds the Kestrel host that serves TinyServer on raw TCP (no HTTP).</summary>
public static class TinyServerHost
{
    public static WebApplication Build(ServerOptions options, Action<ILoggingBuilder>? configureLogging = null, TimeProvider? time = null)
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
            void Plain(ListenOptions listen)
            {
                listeners.All.Add(listen);
                if (options.ProxyProtocol)
                {
                    ProxyProtocolMiddleware proxy = listen.ApplicationServices.GetRequiredService<ProxyProtocolMiddleware>();
                    listen.Use(next => connection => proxy.OnConnectedAsync(connection, next));
                }

                listen.UseConnectionHandler<LineConnectionHandler>();
            }

            void Tls(ListenOptions listen)
            {
                listeners.Tls.Add(listen);
                TlsGate.Use(listen);
                listen.UseConnectionHandler<LineConnectionHandler>();
            }

            void Unix(ListenOptions listen)
            {
                listeners.Unix.Add(listen);
                listen.UseConnectionHandler<LineConnectionHandler>();
            }

            if (options.InheritedSockets.Count > 0)
            {
                // Socket activation: the passed sockets replace --port, --tls-port, --unix (and --bind for them).
                foreach (InheritedSocket inherited in options.InheritedSockets)
                {
                    kestrel.ListenHandle((ulong)inherited.Descriptor, listen =>
                    {
                        listeners.Inherited[listen] = inherited.Descriptor;
                        if (inherited.Tls)
                        {
                            Tls(listen); // With TlsCertificate: validation requires it for a passed 'tls' socket.
                        }
                        else if (SocketActivation.IsUnix(inherited.Descriptor))
                        {
                            Unix(listen);
                        }
                        else
                        {
                            Plain(listen);
                        }
                    });
                }
            }
            else
            {
                foreach (IPAddress address in options.Bind)
                {
                    kestrel.Listen(address, options.Port, Plain);
                }

                if (options is { TlsPort: int tlsPort, TlsCertificate: not null })
                {
                    foreach (IPAddress address in options.Bind)
                    {
                        kestrel.Listen(address, tlsPort, Tls);
                    }
                }

                if (options.UnixSocketPath is { } path)
                {
                    kestrel.ListenUnixSocket(path, Unix);
                }
            }

            // Prometheus scrapes over plain HTTP/1.1, on its own port of the same addresses.
            for (int i = 0; options.MetricsExporter == MetricsExporter.Prometheus && i < options.Bind.Count; i++)
            {
                kestrel.Listen(options.Bind[i], options.PrometheusPort, listen =>
                {
                    listeners.Metrics.Add(listen);
                    listen.Protocols = HttpProtocols.Http1;
                });
            }

            // The health endpoints (--health-port) over plain HTTP/1.1, on their own port of the same addresses, or on
            // the Prometheus listener when --prometheus-port is the same port. Never through the line protocol, and
            // never counted against --max-connections (only the line protocol's handler counts connections).
            for (int i = 0; options.HealthPort is int healthPort && !SharesPrometheusPort(options) && i < options.Bind.Count; i++)
            {
                kestrel.Listen(options.Bind[i], healthPort, listen =>
                {
                    listeners.Health.Add(listen);
                    listen.Protocols = HttpProtocols.Http1;
                });
            }
        });
        builder.Services.AddSingleton<IConnectionListenerFactory, SocketListenerFactory>();
        builder.Services.AddSingleton(services => IConnectionTransport.Create(
            options, services.GetRequiredService<ILoggerFactory>(), services.GetRequiredService<IMeterFactory>()));
        builder.Services.AddSingleton<ConnectionAdmission>();
        builder.Services.AddSingleton<ConnectionTracker>();
        builder.Services.AddSingleton<ProxyProtocolMiddleware>();
        builder.Services.AddSingleton<TlsGate>();
        builder.Services.AddSingleton(_ => new TlsContext(options.TlsCertificate ?? throw new InvalidOperationException("TLS needs TlsCertificate"), options.TlsReleaseBuffers));
        builder.Services.AddSingleton<HandshakeThreads>();
        builder.Services.AddMetrics();
        builder.Services.AddSingleton<ServerMetrics>();
        if (options.MetricsExporter != MetricsExporter.None)
        {
            MetricsExport.AddExporter(builder.Services, options);
        }

        builder.Services.AddSingleton<LameDuck>();
        builder.Services.AddHostedService(services => services.GetRequiredService<LameDuck>());
        if (options.HealthPort is not null)
        {
            HealthEndpoints.AddChecks(builder.Services);
        }

        builder.Services.AddSystemd(); // READY=1 and journald log levels when systemd runs it; nothing otherwise.
        builder.Services.AddSingleton<FileDescriptorLimit>();
        // The host's stop covers the lame duck's delay, then --shutdown-timeout for the drain (see LameDuck).
        builder.Services.Configure<HostOptions>(host => host.ShutdownTimeout = TimeSpan.FromSeconds(options.DrainDelaySeconds + options.ShutdownTimeoutSeconds));
        builder.Services.AddSingleton(options);

        // The options machinery checks the ranges again (options built in code skip the loader) before anything listens.
        builder.Services.AddSingleton<IValidateOptions<ServerOptions>, ServerOptionsValidator>();
        builder.Services.AddSingleton<IOptionsFactory<ServerOptions>>(services => new GivenOptionsFactory(
            options, services.GetServices<IConfigureOptions<ServerOptions>>(), services.GetServices<IPostConfigureOptions<ServerOptions>>(), services.GetServices<IValidateOptions<ServerOptions>>()));
        builder.Services.AddOptions<ServerOptions>().ValidateOnStart();
        builder.Services.AddSingleton(listeners);
        builder.Services.AddSingleton(time ?? TimeProvider.System); // Every timeout reads it; tests pass a fake clock.
        builder.Logging.SetMinimumLevel(options.LogLevel);
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        // An unhealthy /readyz is the lame duck's answer, logged once by LameDuck, not at Error once per probe.
        builder.Logging.AddFilter("Microsoft.Extensions.Diagnostics.HealthChecks", LogLevel.None);
        // A failed start is reported by Program as one line; the host would log it again with a stack trace.
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.None);
        configureLogging?.Invoke(builder.Logging);
        WebApplication app = builder.Build();
        if (options.HealthPort is not null)
        {
            HealthEndpoints.Map(app, context => Arrived(context, SharesPrometheusPort(options) ? listeners.Metrics : listeners.Health));
        }

        if (options.MetricsExporter == MetricsExporter.Prometheus)
        {
            MetricsExport.MapPrometheus(app, context => Arrived(context, listeners.Metrics));
        }

        return app;
    }

    /// <summary>The plain TCP endpoints Kestrel bound, with the real ports when port 0 was asked for. Valid once started.</summary>
    public static IReadOnlyList<IPEndPoint> BoundEndPoints(WebApplication app) =>
        [.. app.Services.GetRequiredService<Listeners>().All.Select(listen => listen.IPEndPoint).OfType<IPEndPoint>()];

    /// <summary>The TLS endpoints bound (none without --tls-port). Valid once started.</summary>
    public static IReadOnlyList<IPEndPoint> TlsEndPoints(WebApplication app) =>
        [.. app.Services.GetRequiredService<Listeners>().Tls.Select(listen => listen.IPEndPoint).OfType<IPEndPoint>()];

    /// <summary>
    /// Every endpoint as the startup log names it: <c>127.0.0.1:40000</c>, <c>127.0.0.1:40001 (TLS)</c>,
    /// <c>unix:/run/tinyserver.sock</c>; a socket passed by socket activation adds its descriptor: <c>127.0.0.1:40000 (fd 3)</c>.
    /// </summary>
    public static IReadOnlyList<string> Describe(WebApplication app)
    {
        Listeners listeners = app.Services.GetRequiredService<Listeners>();
        string Name(ListenOptions listen, bool tls)
        {
            string name = listen.EndPoint is UnixDomainSocketEndPoint unix ? $"unix:{unix}" : $"{listen.EndPoint}";
            var notes = new List<string>(2);
            if (tls)
            {
                notes.Add("TLS");
            }

            if (listeners.Inherited.TryGetValue(listen, out int descriptor))
            {
                notes.Add($"fd {descriptor}");
            }

            return notes.Count == 0 ? name : $"{name} ({string.Join(", ", notes)})";
        }

        return [.. listeners.All.Select(l => Name(l, false)), .. listeners.Tls.Select(l => Name(l, true)), .. listeners.Unix.Select(l => Name(l, false))];
    }

    /// <summary>The Prometheus <c>/metrics</c> endpoints (empty unless <c>--metrics-exporter prometheus</c>). Valid once started.</summary>
    public static IReadOnlyList<IPEndPoint> MetricsEndPoints(WebApplication app) =>
        [.. app.Services.GetRequiredService<Listeners>().Metrics.Select(listen => listen.IPEndPoint).OfType<IPEndPoint>()];

    /// <summary>The HTTP endpoints of <c>/healthz</c> and <c>/readyz</c> (empty without <c>--health-port</c>). Valid once started.</summary>
    public static IReadOnlyList<IPEndPoint> HealthEndPoints(WebApplication app)
    {
        var options = app.Services.GetRequiredService<ServerOptions>();
        Listeners listeners = app.Services.GetRequiredService<Listeners>();
        return options.HealthPort is null ? []
            : [.. (SharesPrometheusPort(options) ? listeners.Metrics : listeners.Health).Select(listen => listen.IPEndPoint).OfType<IPEndPoint>()];
    }

    /// <summary>The health endpoints are served on the Prometheus listeners: --health-port equals --prometheus-port.</summary>
    private static bool SharesPrometheusPort(ServerOptions options) =>
        options.MetricsExporter == MetricsExporter.Prometheus && options.HealthPort == options.PrometheusPort;

    /// <summary>The request came in through one of <paramref name="listens"/> (by local port: the bound one, also for port 0).</summary>
    private static bool Arrived(HttpContext context, List<ListenOptions> listens)
    {
        int port = context.Connection.LocalPort;
        foreach (ListenOptions listen in listens)
        {
            if (listen.IPEndPoint?.Port == port)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Hands the options machinery the one <see cref="ServerOptions"/> instance (init-only: it cannot be configured in place).</summary>
    private sealed class GivenOptionsFactory(
        ServerOptions options,
        IEnumerable<IConfigureOptions<ServerOptions>> setups,
        IEnumerable<IPostConfigureOptions<ServerOptions>> postConfigures,
        IEnumerable<IValidateOptions<ServerOptions>> validations) : OptionsFactory<ServerOptions>(setups, postConfigures, validations)
    {
        protected override ServerOptions CreateInstance(string name) => options;
    }

    private sealed class Listeners
    {
        public List<ListenOptions> All { get; } = [];

        public List<ListenOptions> Tls { get; } = [];

        public List<ListenOptions> Unix { get; } = [];

        public List<ListenOptions> Metrics { get; } = [];

        public List<ListenOptions> Health { get; } = [];

        /// <summary>The listeners on sockets passed by socket activation, and their descriptors.</summary>
        public Dictionary<ListenOptions, int> Inherited { get; } = [];
    }
}
