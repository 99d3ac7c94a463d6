using System.CommandLine;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting.Systemd;
using Microsoft.Extensions.Options;
using TinyServer.Server;

ServerOptions? options;
ParseResult commandLine;
try
{
    options = ServerOptionsLoader.Load(args, Environment.GetEnvironmentVariables(), Path.Combine(AppContext.BaseDirectory, "appsettings.json"), out commandLine);
}
catch (OptionsException e)
{
    Console.Error.WriteLine($"tinyserver: error: {e.Message}");
    return 2;
}

if (options is null)
{
    // --help, --version or the [suggest] directive: System.CommandLine writes it and exits 0.
    return commandLine.Invoke();
}

FileDescriptorLimit.Raise();
SocketsTransport.SetRuntimeEnvironment(options);
await using WebApplication app = TinyServerHost.Build(options, logging =>
{
    if (SystemdHelpers.IsSystemdService())
    {
        logging.AddSystemdConsole(); // <6>-style priority prefixes for journald, which adds its own timestamps.
    }
    else
    {
        logging.AddSimpleConsole(console =>
        {
            console.SingleLine = true;
            console.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fff ";
        });
    }
});
ILogger logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("TinyServer.Server");
try
{
    await app.StartAsync();
}
catch (OptionsValidationException e)
{
    // Options built by the loader were checked there already; this is the options machinery's ValidateOnStart.
    Console.Error.WriteLine($"tinyserver: error: {e.Failures.First()}");
    return 2;
}
catch (SocketActivationException e)
{
    // A passed descriptor that is not a listening stream socket: the unit is wrong, not --port.
    Console.Error.WriteLine($"tinyserver: error: cannot listen: {e.Message}");
    return 1;
}
catch (Exception e) when (e is IOException or SocketException)
{
    // Port in use, address not on this machine, permission denied: one line, no stack trace.
    string message = (e.InnerException?.Message is { Length: > 0 } inner && !e.Message.Contains(inner, StringComparison.OrdinalIgnoreCase))
        ? $"{e.Message} ({inner})"
        : e.Message;
    message = message.Replace("http://", "", StringComparison.Ordinal);
    if (!message.Contains($":{options.Port}", StringComparison.Ordinal) && !message.Contains($":{options.TlsPort}", StringComparison.Ordinal)
        && (options.UnixSocketPath is null || !message.Contains(options.UnixSocketPath, StringComparison.Ordinal)))
    {
        message += $" (binding {string.Join(", ", options.Bind)} port {options.Port}{(options.TlsPort is int tls ? $" and TLS port {tls}" : "")}{(options.UnixSocketPath is { } unix ? $", unix:{unix}" : "")})";
    }

    Console.Error.WriteLine($"tinyserver: error: cannot listen: {message}");
    return 1;
}

foreach (string endPoint in TinyServerHost.Describe(app))
{
    Log.Listening(logger, endPoint);
}

foreach (var endPoint in TinyServerHost.MetricsEndPoints(app))
{
    Log.PrometheusListening(logger, $"http://{endPoint}/metrics");
}

foreach (var endPoint in TinyServerHost.HealthEndPoints(app))
{
    Log.HealthListening(logger, $"http://{endPoint}");
}

FileDescriptorLimit descriptors = app.Services.GetRequiredService<FileDescriptorLimit>();
if (FileDescriptorLimit.Current is long limit && descriptors.Capacity is long capacity)
{
    if (capacity < options.MaxConnections)
    {
        Log.CapacityLow(logger, limit, capacity, options.MaxConnections);
    }
    else
    {
        Log.Capacity(logger, limit, capacity, options.MaxConnections);
    }
}

Log.Ready(logger, options.MaxLineLength);
await app.WaitForShutdownAsync();
ConnectionTracker tracker = app.Services.GetRequiredService<ConnectionTracker>();
Log.Stopped(logger, tracker.Accepted, tracker.Rejected, tracker.Drained, tracker.Aborted);
if (options.ProxyProtocol)
{
    Log.ProxySummary(logger, tracker.ProxyAccepted, tracker.ProxyRejected(ProxyRejection.UntrustedPeer), tracker.ProxyRejected(ProxyRejection.InvalidHeader),
        tracker.ProxyRejected(ProxyRejection.Timeout), tracker.ProxyRejected(ProxyRejection.ClosedEarly));
}

return 0;
