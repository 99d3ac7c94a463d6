using System.ComponentModel.DataAnnotations;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Options;
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
    [Port]
    public int Port { get; init; } = Wire.DefaultPort;

    /// <summary>Addresses to listen on. Loopback by default: listening on all interfaces is an explicit choice.</summary>
    public IReadOnlyList<IPAddress> Bind { get; init; } = [IPAddress.Loopback, IPAddress.IPv6Loopback];

    /// <summary>Longest request line in bytes, line ending excluded.</summary>
    [Range(MinLineLengthLimit, MaxLineLengthLimit, ErrorMessage = "is not a line length: use {1}-{2} bytes")]
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
    [Range(0, 65_535, ErrorMessage = "is not a port: use 1-65535, or 0 for any free port")]
    public int PrometheusPort { get; init; } = 9464;

    /// <summary>Seconds between two exports to the console or to OTLP (Prometheus is pulled when it scrapes).</summary>
    [Range(1, 3600, ErrorMessage = "is not an interval: use {1}-{2} seconds")]
    public int MetricsIntervalSeconds { get; init; } = 10;

    /// <summary>
    /// Connections served at once; one more gets <c>ERROR TOO_MANY_CONNECTIONS</c> and is closed. 10,000 idle
    /// connections cost about 50 MiB; the server raises its file descriptor limit to match at startup.
    /// </summary>
    [Range(1, 1_000_000, ErrorMessage = "is not a connection count: use {1}-{2}")]
    public int MaxConnections { get; init; } = 10_000;

    /// <summary>Seconds in which the client neither sends a complete line nor takes a reply, before <c>ERROR IDLE_TIMEOUT</c> and a close; 0 disables.</summary>
    [Range(0, 86_400, ErrorMessage = "is not a timeout: use 0 (off) to {2} seconds")]
    public int IdleTimeoutSeconds { get; init; } = 300;

    /// <summary>
    /// Bytes read from a connection and not yet answered before the server stops reading from it (backpressure).
    /// With <see cref="MaxWriteBuffer"/>, bounds what a peer that sends without reading can make the server hold:
    /// about 128 KiB a connection at the defaults, so 1,000 such peers cost well under 256 MiB. The epoll transport
    /// raises it to <see cref="MaxLineLength"/> + 2 when that is larger: a line waiting for its LF must fit.
    /// </summary>
    [Range(4096, 64 * 1024 * 1024, ErrorMessage = "is not a buffer size: use {1}-{2} bytes")]
    public int MaxReadBuffer { get; init; } = 32 * 1024;

    /// <summary>Bytes of replies waiting for a slow reader before the server stops answering it.</summary>
    [Range(4096, 64 * 1024 * 1024, ErrorMessage = "is not a buffer size: use {1}-{2} bytes")]
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
    [Range(0, 60, ErrorMessage = "is not a timeout: use {1}-{2} seconds")]
    public int LingerTimeoutSeconds { get; init; } = 2;

    /// <summary>Seconds a stopping server waits for connections to drain before aborting them.</summary>
    [Range(0, 3600, ErrorMessage = "is not a timeout: use {1}-{2} seconds")]
    public int ShutdownTimeoutSeconds { get; init; } = 5;

    /// <summary>Longest <see cref="DrainDelaySeconds"/>: ten minutes, far above any balancer's check interval × fall count.</summary>
    public const int MaxDrainDelaySeconds = 600;

    /// <summary>
    /// Seconds a stopping server stays a lame duck before it stops accepting: it reports not-ready at once
    /// (<c>/readyz</c>, with <see cref="HealthPort"/>) but keeps accepting and serving, so that a balancer that
    /// checks readiness takes it out of rotation before its listener closes. 0 (the default) stops accepting at once.
    /// <see cref="ShutdownTimeoutSeconds"/> counts from the end of this delay; a second SIGTERM or SIGINT cuts it short.
    /// </summary>
    [Range(0, MaxDrainDelaySeconds, ErrorMessage = "is not a delay: use {1}-{2} seconds")]
    public int DrainDelaySeconds { get; init; }

    /// <summary>
    /// When set, HTTP/1.1 <c>/healthz</c> (200 while the process runs) and <c>/readyz</c> (200 while listening and not
    /// stopping, 503 otherwise) on this port of every <see cref="Bind"/> address; 0 picks free ports. Equal to
    /// <see cref="PrometheusPort"/> with the Prometheus exporter, the two share one listener.
    /// </summary>
    [Port]
    public int? HealthPort { get; init; }

    /// <summary>Longest path of a Unix domain socket, in bytes (sockaddr_un's sun_path holds 108 with the NUL).</summary>
    public const int MaxUnixPathBytes = 107;

    /// <summary>When set, the server also listens on a Unix domain socket at this path.</summary>
    public string? UnixSocketPath { get; init; }

    /// <summary>
    /// Permissions of the Unix socket file. Connecting needs write permission, so 0660 lets the owner and the owner's
    /// group connect and nobody else, as Docker's socket does; 0666 opens it to every local user.
    /// </summary>
    public UnixFileMode UnixSocketMode { get; init; } = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite;

    /// <summary>
    /// Listening sockets passed by socket activation (LISTEN_FDS, <see cref="SocketActivation"/>). When there are any,
    /// the server serves them instead of binding <see cref="Port"/>, <see cref="TlsPort"/> and <see cref="UnixSocketPath"/>
    /// on <see cref="Bind"/>; a socket named <c>tls</c> serves TLS with <see cref="TlsCertificate"/>. The server closes
    /// its descriptors when it stops (close(2) only: the sockets stay open wherever else they are).
    /// </summary>
    public IReadOnlyList<InheritedSocket> InheritedSockets { get; init; } = [];

    /// <summary>When set (with <see cref="TlsCertificate"/>), the port of the TLS endpoints, on every <see cref="Bind"/> address; 0 picks free ports.</summary>
    [Port]
    public int? TlsPort { get; init; }

    /// <summary>The certificate, with its private key, that the TLS endpoints present.</summary>
    public X509Certificate2? TlsCertificate { get; init; }

    /// <summary>Seconds a TLS client has to complete its handshake before the connection is closed.</summary>
    [Range(1, 300, ErrorMessage = "is not a timeout: use {1}-{2} seconds")]
    public int TlsHandshakeTimeoutSeconds { get; init; } = 10;

    /// <summary>
    /// Threads that run TLS handshakes and closes at idle CPU priority (<see cref="HandshakeThreads"/>): only when no
    /// event thread wants the CPU. One per core by default.
    /// </summary>
    [Range(1, 256, ErrorMessage = "is not a thread count: use {1}-{2}")]
    public int TlsHandshakeThreads { get; init; } = Math.Min(Environment.ProcessorCount, 256);

    /// <summary>
    /// Milliseconds a TLS handshake waits for idle CPU before one thread of normal priority runs it, so that a server
    /// busy with requests still takes new TLS clients; 0 runs every handshake at normal priority, on that thread.
    /// </summary>
    [Range(0, 10_000, ErrorMessage = "is not a wait: use {1}-{2} milliseconds")]
    public int TlsHandshakeIdleWaitMs { get; init; } = 100;

    /// <summary>
    /// OpenSSL's <c>SSL_MODE_RELEASE_BUFFERS</c>: a TLS session frees its two record buffers (about 16 KiB each) while
    /// it holds no record, and allocates them again for the next. An idle TLS connection then holds about 20 KiB
    /// instead of 36 (Redis's: 37), for about 5 % more CPU a request (benchmarks/README.md, "TLS"). Default false.
    /// </summary>
    public bool TlsReleaseBuffers { get; init; }

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
    [Range(3, 60, ErrorMessage = "is not a timeout: use {1}-{2} seconds")]
    public int ProxyHeaderTimeoutSeconds { get; init; } = 5;

    /// <summary>
    /// Connections served at once from one client address (the original one, behind a proxy); 0 is no limit. Off by
    /// default: without the PROXY protocol, all balanced traffic comes from the balancer's address.
    /// </summary>
    [Range(0, 1_000_000, ErrorMessage = "is not a connection count: use 0 (no limit) to {2}")]
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
    [Range(0, 1024, ErrorMessage = "is not a thread count: use 0 (the runtime's choice) to {2}")]
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
    [Range(0, 64, ErrorMessage = "is not a queue count: use 0 (the thread pool) to {2}")]
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
/// A TCP port a client may be told to use: <see cref="ServerOptions.MinPort"/> to <see cref="ServerOptions.MaxPort"/>
/// (no privileged port, none from the ephemeral range), or 0 for any free port.
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class PortAttribute() : RangeAttribute(ServerOptions.MinPort, ServerOptions.MaxPort)
{
    public override string FormatErrorMessage(string name) =>
        $"is not a valid port: use {Minimum}-{Maximum}, or 0 for any free port";

    public override bool IsValid(object? value) => value is null or 0 || base.IsValid(value);
}

/// <summary>Checks every range on <see cref="ServerOptions"/>, generated at build time from its attributes (no reflection).</summary>
[OptionsValidator]
public sealed partial class ServerOptionsValidator : IValidateOptions<ServerOptions>;
