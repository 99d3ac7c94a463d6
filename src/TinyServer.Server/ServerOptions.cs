using System.Collections;
using System.Globalization;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Microsoft.Extensions.Configuration;
using TinyServer.Protocol;

namespace TinyServer.Server;

/// <summary>Every setting of the server, with its default. See README.md, "Server options".</summary>
public sealed record ServerOptions
{
    public const int MinPort = 1025;
    public const int MaxPort = 49151;
    public const int MinLineLengthLimit = 16;
    public const int MaxLineLengthLimit = 1024 * 1024;

    /// <summary>TCP port; 0 picks a free port (each bound address gets its own).</summary>
    public int Port { get; init; } = Wire.DefaultPort;

    /// <summary>Addresses to listen on. Loopback by default: listening on all interfaces is an explicit choice.</summary>
    public IReadOnlyList<IPAddress> Bind { get; init; } = [IPAddress.Loopback, IPAddress.IPv6Loopback];

    /// <summary>Longest request line in bytes, line ending excluded.</summary>
    public int MaxLineLength { get; init; } = Wire.DefaultMaxLineLength;

    /// <summary>Minimum level of the server's own log lines (Kestrel's are Warning and above).</summary>
    public LogLevel LogLevel { get; init; } = LogLevel.Information;

    /// <summary>Where the <c>TinyServer</c> meter is exported with OpenTelemetry; none loads no OpenTelemetry code at all.</summary>
    public MetricsExporter MetricsExporter { get; init; } = MetricsExporter.None;

    /// <summary>The OTLP collector for <see cref="MetricsExporter.Otlp"/>; null leaves the exporter's own default
    /// (http://localhost:4317 over gRPC, http://localhost:4318/v1/metrics over HTTP).</summary>
    public Uri? OtlpEndpoint { get; init; }

    /// <summary>OTLP over gRPC (port 4317 by convention) or over HTTP with protobuf bodies (4318, path /v1/metrics).</summary>
    public OtlpProtocol OtlpProtocol { get; init; } = OtlpProtocol.Grpc;

    /// <summary>Port of the Prometheus scraping endpoint (<c>/metrics</c> over HTTP on the <see cref="Bind"/> addresses).</summary>
    public int PrometheusPort { get; init; } = 9464;

    /// <summary>Seconds between two exports to the console or to OTLP (Prometheus is pulled when it scrapes).</summary>
    public int MetricsIntervalSeconds { get; init; } = 10;

    /// <summary>
    /// Connections served at once; one more gets <c>ERROR TOO_MANY_CONNECTIONS</c> and is closed. 10,000 idle
    /// connections cost about 50 MiB; the server raises its file descriptor limit to match at startup.
    /// </summary>
    public int MaxConnections { get; init; } = 10_000;

    /// <summary>Seconds without a complete line before <c>ERROR IDLE_TIMEOUT</c> and a close; 0 disables.</summary>
    public int IdleTimeoutSeconds { get; init; } = 300;

    /// <summary>
    /// Bytes read from a connection and not yet answered before the server stops reading from it (backpressure).
    /// With <see cref="MaxWriteBuffer"/>, bounds what a peer that sends without reading can make the server hold:
    /// about 128 KiB a connection at the defaults, so 1,000 such peers cost well under 256 MiB. The epoll transport
    /// raises it to <see cref="MaxLineLength"/> + 2 when that is larger: a line waiting for its LF must fit.
    /// </summary>
    public int MaxReadBuffer { get; init; } = 32 * 1024;

    /// <summary>Bytes of replies waiting for a slow reader before the server stops answering it.</summary>
    public int MaxWriteBuffer { get; init; } = 32 * 1024;

    /// <summary>
    /// Connections the kernel queues before the server accepts them (listen backlog; Redis uses 511, Kestrel 512).
    /// The kernel caps it at net.core.somaxconn.
    /// </summary>
    public int ListenBacklog { get; init; } = 511;

    /// <summary>
    /// After its last reply on a connection it closes (QUIT, a line too long, a timeout, shutdown, the connection
    /// limit), the server reads and discards what the client still sends for up to this many seconds, until the
    /// client closes or pauses for <see cref="LineConnectionHandler.QuietPeriod"/>. Closing a socket with unread input
    /// makes the kernel reset the connection and drop replies not yet delivered. 0 closes at once.
    /// </summary>
    public int LingerTimeoutSeconds { get; init; } = 2;

    /// <summary>Seconds a stopping server waits for connections to drain before aborting them.</summary>
    public int ShutdownTimeoutSeconds { get; init; } = 5;

    /// <summary>Longest path of a Unix domain socket, in bytes (sockaddr_un's sun_path holds 108 with the NUL).</summary>
    public const int MaxUnixPathBytes = 107;

    /// <summary>When set, the server also listens on a Unix domain socket at this path.</summary>
    public string? UnixSocketPath { get; init; }

    /// <summary>
    /// Permissions of the Unix socket file. Connecting needs write permission, so 0660 lets the owner and the owner's
    /// group connect and nobody else, as Docker's socket does; 0666 opens it to every local user.
    /// </summary>
    public UnixFileMode UnixSocketMode { get; init; } = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite;

    /// <summary>When set (with <see cref="TlsCertificate"/>), the port of the TLS endpoints, on every <see cref="Bind"/> address; 0 picks free ports.</summary>
    public int? TlsPort { get; init; }

    /// <summary>The certificate, with its private key, that the TLS endpoints present.</summary>
    public X509Certificate2? TlsCertificate { get; init; }

    /// <summary>Seconds a TLS client has to complete its handshake before the connection is closed.</summary>
    public int TlsHandshakeTimeoutSeconds { get; init; } = 10;

    /// <summary>
    /// The plain TCP endpoints expect a PROXY protocol header (version 1 or 2) before anything else on every
    /// connection, from <see cref="TrustedProxies"/> only; the connection then has the original client's address.
    /// </summary>
    public bool ProxyProtocol { get; init; }

    /// <summary>Peers allowed to send a PROXY protocol header (addresses or CIDR networks); required with <see cref="ProxyProtocol"/>.</summary>
    public IReadOnlyList<IPNetwork> TrustedProxies { get; init; } = [];

    /// <summary>
    /// Seconds a connection has to deliver its complete PROXY protocol header. HAProxy's specification asks for at
    /// least 3, to cover a TCP retransmit.
    /// </summary>
    public int ProxyHeaderTimeoutSeconds { get; init; } = 5;

    /// <summary>
    /// Connections served at once from one client address (the original one, behind a proxy); 0 is no limit. Off by
    /// default: without the PROXY protocol, all balanced traffic comes from the balancer's address.
    /// </summary>
    public int MaxConnectionsPerAddress { get; init; }

    /// <summary>
    /// How connections are served: <see cref="TransportKind.Epoll"/> (TinyServer's own event loops, the default on
    /// Linux) or <see cref="TransportKind.Sockets"/> (Kestrel's socket transport). See benchmarks/README.md.
    /// </summary>
    public TransportKind Transport { get; init; } = OperatingSystem.IsLinux() ? TransportKind.Epoll : TransportKind.Sockets;

    /// <summary>
    /// Event threads: epoll loops with <see cref="TransportKind.Epoll"/>, the runtime's socket engine threads
    /// (<c>DOTNET_SYSTEM_NET_SOCKETS_THREAD_COUNT</c>) with <see cref="TransportKind.Sockets"/>. 0 chooses: one epoll
    /// loop per two cores, or the runtime's own choice.
    /// </summary>
    public int IoThreads { get; init; }

    /// <summary>The epoll loops to start: <see cref="IoThreads"/>, or one per two cores.</summary>
    public int EffectiveIoThreads => IoThreads > 0 ? IoThreads : Math.Max(1, Environment.ProcessorCount / 2);

    /// <summary>
    /// Sockets transport only. Run the whole request on the socket engine's event thread instead of handing it to the
    /// thread pool three times: Kestrel's <c>UnsafePreferInlineScheduling</c> plus the runtime's
    /// <c>DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS</c>. Safe because the handler never blocks. Process-wide: it
    /// takes effect only if set before the process opens its first socket (Program does).
    /// </summary>
    public bool InlineIo { get; init; } = true;

    /// <summary>
    /// Sockets transport only. Kestrel's <c>IOQueueCount</c>: queues that run the transport's send and receive loops
    /// when <see cref="InlineIo"/> is off (0: the thread pool). Default: one per core, at most 16, as in Kestrel.
    /// </summary>
    public int IoQueues { get; init; } = Math.Min(Environment.ProcessorCount, 16);

    /// <summary>
    /// Sockets transport only. Kestrel's <c>WaitForDataBeforeAllocatingBuffer</c>: a zero-byte read before renting a
    /// receive buffer, so an idle connection holds none (one more system call per read). The epoll transport never
    /// holds a buffer for an idle connection and needs no extra call.
    /// </summary>
    public bool WaitForData { get; init; } = true;
}

/// <summary>See <see cref="ServerOptions.Transport"/>.</summary>
public enum TransportKind
{
    Epoll,
    Sockets,
}

/// <summary>Values of <c>--metrics-exporter</c>.</summary>
public enum MetricsExporter
{
    None,
    Console,
    Otlp,
    Prometheus,
}

/// <summary>Values of <c>--otlp-protocol</c>.</summary>
public enum OtlpProtocol
{
    Grpc,
    Http,
}

/// <summary>A bad option value or an unknown option: one line for the operator.</summary>
public sealed class OptionsException(string message) : Exception(message);

/// <summary>
/// Reads <see cref="ServerOptions"/> from, highest precedence first: the command line, environment variables
/// (<c>TINYSERVER_</c> prefix), then <c>appsettings.json</c> beside the executable.
/// </summary>
public static class ServerOptionsLoader
{
    public const string EnvironmentPrefix = "TINYSERVER_";

    private sealed record Option(string Switch, string Key, string Default, string Help, bool Repeatable = false, bool Flag = false)
    {
        public string EnvironmentVariable => EnvironmentPrefix + Switch[2..].Replace('-', '_').ToUpperInvariant();
    }

    private static readonly Option[] All =
    [
        new("--port", "Port", "40000", $"TCP port, {ServerOptions.MinPort}-{ServerOptions.MaxPort}, or 0 for any free port"),
        new("--bind", "Bind", "127.0.0.1 and ::1", "address to listen on, repeatable (0.0.0.0 or :: listens on all interfaces)", Repeatable: true),
        new("--max-line-length", "MaxLineLength", "16384", $"longest request line in bytes, line ending excluded ({ServerOptions.MinLineLengthLimit}-{ServerOptions.MaxLineLengthLimit})"),
        new("--max-connections", "MaxConnections", "10000", "connections served at once; the next gets ERROR TOO_MANY_CONNECTIONS (1-1000000)"),
        new("--idle-timeout", "IdleTimeout", "300", "seconds without a complete line before ERROR IDLE_TIMEOUT and a close; 0 disables (0-86400)"),
        new("--max-read-buffer", "MaxReadBuffer", "32768", "bytes received and not yet answered before reading pauses (4096-67108864)"),
        new("--max-write-buffer", "MaxWriteBuffer", "32768", "bytes of replies queued for a slow reader before answering pauses (4096-67108864)"),
        new("--linger-timeout", "LingerTimeout", "2", "seconds to read and discard input after the last reply before closing, so the reply is not lost to a reset (0-60)"),
        new("--shutdown-timeout", "ShutdownTimeout", "5", "seconds to drain connections on SIGTERM/SIGINT before aborting them (0-3600)"),
        new("--transport", "Transport", "epoll on Linux", "epoll: TinyServer's own event loops; sockets: Kestrel's socket transport"),
        new("--io-threads", "IoThreads", "0", "event threads: epoll loops, or socket engine threads with --transport sockets; 0 chooses (one epoll loop per two cores) (0-1024)"),
        new("--inline-io", "InlineIo", "true", "sockets transport: true runs receive, answer and send on the socket event thread; false uses Kestrel's thread-pool scheduling"),
        new("--io-queues", "IoQueues", "cores, at most 16", "sockets transport: Kestrel I/O queues used when --inline-io is false; 0 uses the thread pool (0-64)"),
        new("--wait-for-data", "WaitForData", "true", "sockets transport: true makes idle connections hold no receive buffer (one more system call per read)"),
        new("--log-level", "LogLevel", "Information", "Trace, Debug (one line per connection), Information, Warning, Error, Critical or None"),
        new("--unix", "Unix", "none", $"also listen on a Unix domain socket at this path (at most {ServerOptions.MaxUnixPathBytes} bytes; a stale socket file is replaced)"),
        new("--unix-mode", "UnixMode", "0660", "permissions of the Unix socket file, octal 0000-0777 (0660: owner and group may connect)"),
        new("--tls-port", "TlsPort", "none", "also serve TLS 1.2/1.3 on this port of every --bind address (0 = any free port); needs --tls-cert"),
        new("--tls-cert", "TlsCert", "none", "certificate for TLS: PEM (key in the same file or --tls-key) or PKCS#12 (.pfx/.p12)"),
        new("--tls-key", "TlsKey", "none", "PEM private key, when it is not in the --tls-cert file"),
        new("--tls-cert-password", "TlsCertPassword", "none", "password of the PKCS#12 file or encrypted PEM key (prefer the environment: the command line shows in ps)"),
        new("--tls-handshake-timeout", "TlsHandshakeTimeout", "10", "seconds a TLS client has to complete its handshake (1-300)"),
        new("--proxy-protocol", "ProxyProtocol", "off", "the TCP endpoints expect a PROXY protocol v1/v2 header first (a flag; =true or =false also work)", Flag: true),
        new("--trusted-proxy", "TrustedProxy", "none", "address or CIDR network allowed to send PROXY headers, repeatable; required with --proxy-protocol", Repeatable: true),
        new("--proxy-header-timeout", "ProxyHeaderTimeout", "5", "seconds to wait for a complete PROXY header before closing (3-60)"),
        new("--max-connections-per-address", "MaxConnectionsPerAddress", "0", "connections served at once per client address; 0 is no limit (0-1000000)"),
        new("--metrics-exporter", "MetricsExporter", "none", "export the TinyServer meter with OpenTelemetry: none, console, otlp or prometheus"),
        new("--otlp-endpoint", "OtlpEndpoint", "http://localhost:4317, or http://localhost:4318/v1/metrics with --otlp-protocol http", "OTLP collector URL for --metrics-exporter otlp"),
        new("--otlp-protocol", "OtlpProtocol", "grpc", "grpc, or http (protobuf over HTTP: give the full URL, e.g. http://collector:4318/v1/metrics)"),
        new("--prometheus-port", "PrometheusPort", "9464", "port of the /metrics endpoint for --metrics-exporter prometheus, on the --bind addresses (1-65535, or 0 for any free port)"),
        new("--metrics-interval", "MetricsInterval", "10", "seconds between exports for --metrics-exporter console and otlp (1-3600)"),
    ];

    private static readonly string PortRule = $"a valid port: use {ServerOptions.MinPort}-{ServerOptions.MaxPort}, or 0 for any free port";

    public static string Usage()
    {
        var text = new System.Text.StringBuilder();
        text.AppendLine("Usage: TinyServer.Server [options]");
        text.AppendLine();
        text.AppendLine("Options (also TINYSERVER_* environment variables, or appsettings.json beside the executable):");
        static string Synopsis(Option option) => "  " + option.Switch + (option.Flag ? "" : " VALUE");

        // The texts start two spaces after the longest option, in one column.
        int column = All.Max(option => Synopsis(option).Length) + 2;
        foreach (Option option in All)
        {
            text.Append(Synopsis(option).PadRight(column)).AppendLine(option.Help + "; default " + option.Default + "; env " + option.EnvironmentVariable);
        }

        text.AppendLine("  --help".PadRight(column) + "print this help");
        return text.ToString();
    }

    /// <summary>Returns null when the command line asks for help.</summary>
    public static ServerOptions? Load(IReadOnlyList<string> args, IDictionary environment, string? settingsFile)
    {
        var commandLine = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        for (int i = 0; i < args.Count; i++)
        {
            string arg = args[i];
            if (arg is "--help" or "-h")
            {
                return null;
            }

            string name = arg;
            string? value = null;
            int equals = arg.IndexOf('=', StringComparison.Ordinal);
            if (arg.StartsWith("--", StringComparison.Ordinal) && equals > 0)
            {
                name = arg[..equals];
                value = arg[(equals + 1)..];
            }

            Option option = All.FirstOrDefault(o => o.Switch == name)
                ?? throw new OptionsException($"unknown option '{arg}' (see --help)");
            if (value is null && option.Flag)
            {
                value = "true";
            }
            else if (value is null)
            {
                if (i + 1 >= args.Count)
                {
                    throw new OptionsException($"option {option.Switch} needs a value");
                }

                value = args[++i];
            }

            if (!commandLine.TryGetValue(option.Key, out List<string>? values))
            {
                commandLine[option.Key] = values = [];
            }
            else if (!option.Repeatable)
            {
                throw new OptionsException($"option {option.Switch} is given twice");
            }

            values.Add(value);
        }

        IConfiguration? settings = null;
        if (settingsFile is not null && File.Exists(settingsFile))
        {
            try
            {
                settings = new ConfigurationBuilder().AddJsonFile(settingsFile, optional: true, reloadOnChange: false).Build();
            }
            catch (InvalidDataException e)
            {
                throw new OptionsException($"cannot read {settingsFile}: {e.Message}");
            }
        }

        (List<string> Values, string Source)? Find(Option option)
        {
            if (commandLine.TryGetValue(option.Key, out List<string>? values))
            {
                return (values, $"{option.Switch} on the command line");
            }

            if (environment[option.EnvironmentVariable] is string env)
            {
                // Only a list is split at commas: a path or a password may hold one.
                return (option.Repeatable ? [.. env.Split(',', StringSplitOptions.TrimEntries)] : [env], $"environment variable {option.EnvironmentVariable}");
            }

            IConfigurationSection? section = settings?.GetSection(option.Key);
            if (section is not null && (section.Value is not null || section.GetChildren().Any()))
            {
                List<string> fromFile = section.Value is not null ? [section.Value] : [.. section.GetChildren().Select(c => c.Value ?? "")];
                return (fromFile, $"'{option.Key}' in {settingsFile}");
            }

            return null;
        }

        var options = new ServerOptions();
        var tls = new Dictionary<string, (string Value, string Source)>(StringComparer.Ordinal);
        foreach (Option option in All)
        {
            if (Find(option) is not var (values, source))
            {
                continue;
            }

            string Single() => values.Count == 1 ? values[0] : throw new OptionsException($"{source}: expected one value");
            if (option.Key is "TlsCert" or "TlsKey" or "TlsCertPassword")
            {
                // Read together once every option is known; a password never appears in a message.
                tls[option.Key] = (option.Key == "TlsCertPassword" ? Single() : NonEmptyPath(Single(), source), source);
                continue;
            }

            string Bad(string why) => $"{source}: '{string.Join(",", values)}' {why}";
            int Int(int min, int max, string what) =>
                int.TryParse(Single(), NumberStyles.None, CultureInfo.InvariantCulture, out int value) && value >= min && value <= max
                    ? value
                    : throw new OptionsException(Bad($"is not {what}"));
            bool Bool() => bool.TryParse(Single(), out bool value) ? value : throw new OptionsException(Bad("is not true or false"));
            options = option.Key switch
            {
                "Port" => options with
                {
                    Port = Int(0, ServerOptions.MaxPort, PortRule) is var port && (port == 0 || port >= ServerOptions.MinPort)
                        ? port
                        : throw new OptionsException(Bad($"is not {PortRule}")),
                },
                "Bind" => options with
                {
                    Bind = values.Count > 0 && values.All(v => IPAddress.TryParse(v, out _))
                        ? [.. values.Select(IPAddress.Parse).Distinct()]
                        : throw new OptionsException(Bad("is not a list of IP addresses (e.g. 127.0.0.1, ::1, 0.0.0.0)")),
                },
                "MaxLineLength" => options with
                {
                    MaxLineLength = Int(ServerOptions.MinLineLengthLimit, ServerOptions.MaxLineLengthLimit, $"a line length: use {ServerOptions.MinLineLengthLimit}-{ServerOptions.MaxLineLengthLimit} bytes"),
                },
                "MaxConnections" => options with { MaxConnections = Int(1, 1_000_000, "a connection count: use 1-1000000") },
                "IdleTimeout" => options with { IdleTimeoutSeconds = Int(0, 86_400, "a timeout: use 0 (off) to 86400 seconds") },
                "MaxReadBuffer" => options with { MaxReadBuffer = Int(4096, 64 * 1024 * 1024, "a buffer size: use 4096-67108864 bytes") },
                "MaxWriteBuffer" => options with { MaxWriteBuffer = Int(4096, 64 * 1024 * 1024, "a buffer size: use 4096-67108864 bytes") },
                "LingerTimeout" => options with { LingerTimeoutSeconds = Int(0, 60, "a timeout: use 0-60 seconds") },
                "ShutdownTimeout" => options with { ShutdownTimeoutSeconds = Int(0, 3600, "a timeout: use 0-3600 seconds") },
                "ProxyProtocol" => options with
                {
                    ProxyProtocol = bool.TryParse(Single(), out bool on) ? on : throw new OptionsException(Bad("is not true or false")),
                },
                "TrustedProxy" => options with
                {
                    TrustedProxies = values.Count > 0 && values.All(v => TryParseNetwork(v, out _))
                        ? [.. values.Select(v => TryParseNetwork(v, out IPNetwork network) ? network : default).Distinct()]
                        : throw new OptionsException(Bad("is not a list of IP addresses or CIDR networks (e.g. 10.0.0.5, 10.0.0.0/24, fd00::/8)")),
                },
                "ProxyHeaderTimeout" => options with { ProxyHeaderTimeoutSeconds = Int(3, 60, "a timeout: use 3-60 seconds") },
                "MaxConnectionsPerAddress" => options with { MaxConnectionsPerAddress = Int(0, 1_000_000, "a connection count: use 0 (no limit) to 1000000") },
                "Transport" => options with
                {
                    Transport = Single() switch
                    {
                        "epoll" when OperatingSystem.IsLinux() => TransportKind.Epoll,
                        "epoll" => throw new OptionsException(Bad("needs Linux: use sockets")),
                        "sockets" => TransportKind.Sockets,
                        _ => throw new OptionsException(Bad("is not a transport: use epoll or sockets")),
                    },
                },
                "InlineIo" => options with { InlineIo = Bool() },
                "IoThreads" => options with { IoThreads = Int(0, 1024, "a thread count: use 0 (the runtime's choice) to 1024") },
                "IoQueues" => options with { IoQueues = Int(0, 64, "a queue count: use 0 (the thread pool) to 64") },
                "WaitForData" => options with { WaitForData = Bool() },
                "LogLevel" => options with
                {
                    LogLevel = Enum.TryParse(Single(), ignoreCase: true, out LogLevel level) && Enum.IsDefined(level) && !int.TryParse(Single(), out _)
                        ? level
                        : throw new OptionsException(Bad("is not a log level (Trace, Debug, Information, Warning, Error, Critical, None)")),
                },
                "Unix" => options with { UnixSocketPath = UnixPath(Single(), source) },
                "UnixMode" => options with
                {
                    UnixSocketMode = Single() is { Length: 3 or 4 } mode && mode.All(c => c is >= '0' and <= '7') && Convert.ToInt32(mode, 8) <= 0x1FF
                        ? (UnixFileMode)Convert.ToInt32(mode, 8)
                        : throw new OptionsException(Bad("is not a file mode: use octal 0000-0777, e.g. 0660")),
                },
                "TlsPort" => options with
                {
                    TlsPort = Int(0, ServerOptions.MaxPort, PortRule) is var tlsPort && (tlsPort == 0 || tlsPort >= ServerOptions.MinPort)
                        ? tlsPort
                        : throw new OptionsException(Bad($"is not {PortRule}")),
                },
                "TlsHandshakeTimeout" => options with { TlsHandshakeTimeoutSeconds = Int(1, 300, "a timeout: use 1-300 seconds") },
                "MetricsExporter" => options with
                {
                    MetricsExporter = Enum.TryParse(Single(), ignoreCase: true, out MetricsExporter exporter) && Enum.IsDefined(exporter) && !int.TryParse(Single(), out _)
                        ? exporter
                        : throw new OptionsException(Bad("is not an exporter (none, console, otlp, prometheus)")),
                },
                "OtlpEndpoint" => options with
                {
                    OtlpEndpoint = Uri.TryCreate(Single(), UriKind.Absolute, out Uri? endpoint) && endpoint.Scheme is "http" or "https"
                        ? endpoint
                        : throw new OptionsException(Bad("is not an http:// or https:// URL")),
                },
                "OtlpProtocol" => options with
                {
                    OtlpProtocol = Single().ToLowerInvariant() switch
                    {
                        "grpc" => OtlpProtocol.Grpc,
                        "http" => OtlpProtocol.Http,
                        _ => throw new OptionsException(Bad("is not an OTLP protocol (grpc, http)")),
                    },
                },
                "PrometheusPort" => options with { PrometheusPort = Int(0, 65_535, "a port: use 1-65535, or 0 for any free port") },
                "MetricsInterval" => options with { MetricsIntervalSeconds = Int(1, 3600, "an interval: use 1-3600 seconds") },
                _ => throw new InvalidOperationException(option.Key),
            };
        }

        if (options.ProxyProtocol && options.TrustedProxies.Count == 0)
        {
            throw new OptionsException("--proxy-protocol needs at least one --trusted-proxy ADDRESS (the balancer's address or network)");
        }

        if (!options.ProxyProtocol && options.TrustedProxies.Count > 0)
        {
            throw new OptionsException("--trusted-proxy is set but --proxy-protocol is off: no PROXY header would be read");
        }

        return WithTls(options, tls);
    }

    private static ServerOptions WithTls(ServerOptions options, Dictionary<string, (string Value, string Source)> tls)
    {
        bool hasCert = tls.TryGetValue("TlsCert", out var cert);
        if (options.TlsPort is null)
        {
            return hasCert
                ? throw new OptionsException($"{cert.Source}: a certificate needs --tls-port, the port to serve TLS on")
                : tls.Count > 0
                    ? throw new OptionsException($"{tls.Values.First().Source}: TLS settings need --tls-port and --tls-cert")
                    : options;
        }

        if (!hasCert)
        {
            throw new OptionsException("--tls-port needs --tls-cert, the certificate to serve TLS with");
        }

        if (options.TlsPort != 0 && options.TlsPort == options.Port)
        {
            throw new OptionsException($"--tls-port: '{options.TlsPort}' is also --port: TLS needs a port of its own");
        }

        (string, string)? key = tls.TryGetValue("TlsKey", out var k) ? k : null;
        (string, string)? password = tls.TryGetValue("TlsCertPassword", out var p) ? p : null;
        return options with { TlsCertificate = TlsCertificateLoader.Load(cert, key, password) };
    }

    private static string NonEmptyPath(string value, string source) =>
        value.Length > 0 ? value : throw new OptionsException($"{source}: needs a file path");

    private static string UnixPath(string value, string source)
    {
        if (value.Length == 0)
        {
            throw new OptionsException($"{source}: needs a socket file path");
        }

        string path = Path.GetFullPath(value);
        if (Encoding.UTF8.GetByteCount(path) > ServerOptions.MaxUnixPathBytes)
        {
            throw new OptionsException($"{source}: '{path}' is longer than the {ServerOptions.MaxUnixPathBytes} bytes a Unix socket path may have");
        }

        string directory = Path.GetDirectoryName(path) ?? "/";
        return Directory.Exists(directory)
            ? path
            : throw new OptionsException($"{source}: the directory '{directory}' does not exist");
    }

    /// <summary>An address (a network of one) or a CIDR network with no host bits set; IPv4-mapped IPv6 counts as IPv4.</summary>
    private static bool TryParseNetwork(string text, out IPNetwork network)
    {
        if (IPAddress.TryParse(text, out IPAddress? address) && !text.Contains('/', StringComparison.Ordinal))
        {
            address = address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
            network = new IPNetwork(address, address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128);
            return true;
        }

        // Host bits set after the prefix (10.0.0.1/8) are most likely a typo: refused rather than masked.
        int slash = text.IndexOf('/', StringComparison.Ordinal);
        return IPNetwork.TryParse(text, out network) && slash > 0
            && IPAddress.TryParse(text.AsSpan(0, slash), out IPAddress? written) && written.Equals(network.BaseAddress);
    }
}
