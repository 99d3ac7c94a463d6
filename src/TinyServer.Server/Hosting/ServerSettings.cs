namespace TinyServer.Server;

/// <summary>
/// The settings as the operator wrote them, one text per configuration key (see <see cref="ServerCommand.All"/>), bound
/// from the merged configuration by the configuration binder's source generator. <see cref="ServerOptionsLoader"/>
/// turns them into <see cref="ServerOptions"/>; the two lists come from the one source that sets them (see there).
/// </summary>
internal sealed class ServerSettings
{
    public string? Port { get; set; }

    public string? MaxLineLength { get; set; }

    public string? MaxConnections { get; set; }

    public string? IdleTimeout { get; set; }

    public string? MaxReadBuffer { get; set; }

    public string? MaxWriteBuffer { get; set; }

    public string? LingerTimeout { get; set; }

    public string? ShutdownTimeout { get; set; }

    public string? DrainDelay { get; set; }

    public string? HealthPort { get; set; }

    public string? Transport { get; set; }

    public string? IoThreads { get; set; }

    public string? InlineIo { get; set; }

    public string? IoQueues { get; set; }

    public string? WaitForData { get; set; }

    public string? LogLevel { get; set; }

    public string? Unix { get; set; }

    public string? UnixMode { get; set; }

    public string? TlsPort { get; set; }

    public string? TlsCert { get; set; }

    public string? TlsKey { get; set; }

    public string? TlsCertPassword { get; set; }

    public string? TlsHandshakeTimeout { get; set; }

    public string? TlsHandshakeThreads { get; set; }

    public string? TlsHandshakeIdleWait { get; set; }

    public string? TlsReleaseBuffers { get; set; }

    public string? ProxyProtocol { get; set; }

    public string? ProxyHeaderTimeout { get; set; }

    public string? MaxConnectionsPerAddress { get; set; }

    public string? MetricsExporter { get; set; }

    public string? OtlpEndpoint { get; set; }

    public string? OtlpProtocol { get; set; }

    public string? PrometheusPort { get; set; }

    public string? MetricsInterval { get; set; }
}
