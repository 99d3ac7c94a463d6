using System.CommandLine;
using System.CommandLine.Parsing;
using System.ComponentModel.DataAnnotations;
using System.Diagnostics.CodeAnalysis;
using System.Reflection;

namespace TinyServer.Server;

/// <summary>
/// One server setting: its command-line switch, its configuration key (appsettings.json; the environment variable is
/// derived from the switch), the <see cref="ServerOptions"/> property whose range attribute bounds it, and its help.
/// </summary>
internal sealed record Setting(string Switch, string Key, string? Property, string Help, string Default, bool Repeatable = false, bool Flag = false)
{
    public string EnvironmentVariable => ServerOptionsLoader.EnvironmentPrefix + Switch[2..].Replace('-', '_').ToUpperInvariant();

    /// <summary>The range of <see cref="Property"/>, read from its attribute: the one place it is written.</summary>
    public RangeAttribute? Range => Property is null ? null : RangeOf(typeof(ServerOptions), Property);

    private static RangeAttribute? RangeOf([DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicProperties)] Type type, string property) =>
        type.GetProperty(property)?.GetCustomAttribute<RangeAttribute>();
}

/// <summary>
/// The server's command line as a System.CommandLine root command: every <see cref="Setting"/> as an option, plus
/// generated help, <c>--version</c>, response files (<c>@FILE</c>) and completions (the <c>[suggest]</c> directive).
/// </summary>
internal static class ServerCommand
{
    public const string Name = "TinyServer.Server";

    public static readonly Setting[] All =
    [
        new("--port", "Port", nameof(ServerOptions.Port), "TCP port", "40000"),
        new("--bind", "Bind", null, "address to listen on, repeatable (0.0.0.0 or :: listens on all interfaces)", "127.0.0.1 and ::1", Repeatable: true),
        new("--max-line-length", "MaxLineLength", nameof(ServerOptions.MaxLineLength), "longest request line in bytes, line ending excluded", "16384"),
        new("--max-connections", "MaxConnections", nameof(ServerOptions.MaxConnections), "connections served at once; the next gets ERROR TOO_MANY_CONNECTIONS", "10000"),
        new("--idle-timeout", "IdleTimeout", nameof(ServerOptions.IdleTimeoutSeconds), "seconds in which the client neither sends a complete line nor takes a reply, before ERROR IDLE_TIMEOUT and a close; 0 disables", "300"),
        new("--max-read-buffer", "MaxReadBuffer", nameof(ServerOptions.MaxReadBuffer), "bytes received and not yet answered before reading pauses", "32768"),
        new("--max-write-buffer", "MaxWriteBuffer", nameof(ServerOptions.MaxWriteBuffer), "bytes of replies queued for a slow reader before answering pauses", "32768"),
        new("--linger-timeout", "LingerTimeout", nameof(ServerOptions.LingerTimeoutSeconds), "seconds to read and discard input after the last reply before closing, so the reply is not lost to a reset", "2"),
        new("--shutdown-timeout", "ShutdownTimeout", nameof(ServerOptions.ShutdownTimeoutSeconds), "seconds to drain connections on SIGTERM/SIGINT before aborting them, counted from the end of --drain-delay", "5"),
        new("--drain-delay", "DrainDelay", nameof(ServerOptions.DrainDelaySeconds), "seconds a stopping server reports not-ready but still accepts and serves, before it stops accepting (set it above the balancer's check interval x fall count); a second SIGTERM cuts it short", "0"),
        new("--health-port", "HealthPort", nameof(ServerOptions.HealthPort), "serve HTTP /healthz and /readyz on this port of every --bind address (may equal --prometheus-port to share it)", "none"),
        new("--transport", "Transport", null, "epoll: TinyServer's own event loops; sockets: Kestrel's socket transport", "epoll on Linux"),
        new("--io-threads", "IoThreads", nameof(ServerOptions.IoThreads), "event threads: epoll loops, or socket engine threads with --transport sockets; 0 chooses (one epoll loop per two cores)", "0"),
        new("--inline-io", "InlineIo", null, "sockets transport: true runs receive, answer and send on the socket event thread; false uses Kestrel's thread-pool scheduling", "true"),
        new("--io-queues", "IoQueues", nameof(ServerOptions.IoQueues), "sockets transport: Kestrel I/O queues used when --inline-io is false; 0 uses the thread pool", "cores, at most 16"),
        new("--wait-for-data", "WaitForData", null, "sockets transport: true makes idle connections hold no receive buffer (one more system call per read)", "true"),
        new("--log-level", "LogLevel", null, "Trace, Debug (one line per connection), Information, Warning, Error, Critical or None", "Information"),
        new("--unix", "Unix", null, $"also listen on a Unix domain socket at this path (at most {ServerOptions.MaxUnixPathBytes} bytes; a stale socket file is replaced)", "none"),
        new("--unix-mode", "UnixMode", null, "permissions of the Unix socket file, octal 0000-0777 (0660: owner and group may connect)", "0660"),
        new("--tls-port", "TlsPort", nameof(ServerOptions.TlsPort), "also serve TLS 1.2/1.3 on this port of every --bind address; needs --tls-cert", "none"),
        new("--tls-cert", "TlsCert", null, "certificate for TLS: PEM (key in the same file or --tls-key) or PKCS#12 (.pfx/.p12)", "none"),
        new("--tls-key", "TlsKey", null, "PEM private key, when it is not in the --tls-cert file", "none"),
        new("--tls-cert-password", "TlsCertPassword", null, "password of the PKCS#12 file or encrypted PEM key (prefer the environment: the command line shows in ps)", "none"),
        new("--tls-handshake-timeout", "TlsHandshakeTimeout", nameof(ServerOptions.TlsHandshakeTimeoutSeconds), "seconds a TLS client has to complete its handshake", "10"),
        new("--tls-handshake-threads", "TlsHandshakeThreads", nameof(ServerOptions.TlsHandshakeThreads), "threads that run TLS handshakes at idle CPU priority, so that they never delay the event threads", "cores"),
        new("--tls-release-buffers", "TlsReleaseBuffers", null, "true frees each idle TLS session's record buffers (about 20 KiB an idle connection instead of 36, for about 5 % more CPU a request)", "false"),
        new("--tls-handshake-idle-wait", "TlsHandshakeIdleWait", nameof(ServerOptions.TlsHandshakeIdleWaitMs), "milliseconds a TLS handshake waits for idle CPU before a thread of normal priority runs it; 0 runs every handshake at normal priority", "100"),
        new("--proxy-protocol", "ProxyProtocol", null, "the TCP endpoints expect a PROXY protocol v1/v2 header first (a flag; =true or =false also work)", "off", Flag: true),
        new("--trusted-proxy", "TrustedProxy", null, "address or CIDR network allowed to send PROXY headers, repeatable; required with --proxy-protocol", "none", Repeatable: true),
        new("--proxy-header-timeout", "ProxyHeaderTimeout", nameof(ServerOptions.ProxyHeaderTimeoutSeconds), "seconds to wait for a complete PROXY header before closing", "5"),
        new("--max-connections-per-address", "MaxConnectionsPerAddress", nameof(ServerOptions.MaxConnectionsPerAddress), "connections served at once per client address; 0 is no limit", "0"),
        new("--metrics-exporter", "MetricsExporter", null, "export the TinyServer meter with OpenTelemetry: none, console, otlp or prometheus", "none"),
        new("--otlp-endpoint", "OtlpEndpoint", null, "OTLP collector URL for --metrics-exporter otlp", "http://localhost:4317, or http://localhost:4318/v1/metrics with --otlp-protocol http"),
        new("--otlp-protocol", "OtlpProtocol", null, "grpc, or http (protobuf over HTTP: give the full URL, e.g. http://collector:4318/v1/metrics)", "grpc"),
        new("--prometheus-port", "PrometheusPort", nameof(ServerOptions.PrometheusPort), "port of the /metrics endpoint for --metrics-exporter prometheus, on the --bind addresses", "9464"),
        new("--metrics-interval", "MetricsInterval", nameof(ServerOptions.MetricsIntervalSeconds), "seconds between exports for --metrics-exporter console and otlp", "10"),
    ];

    /// <summary>The root command: one option per setting, each taking raw text (the loader converts and checks it).</summary>
    public static RootCommand Create()
    {
        var root = new RootCommand(
            "The TinyServer line-protocol server. Every option can also be set by its TINYSERVER_* environment variable or in\n" +
            "appsettings.json beside the executable (the command line wins, then the environment, then the file).\n" +
            "Arguments can come from a response file: @FILE. Exit code: 0 stopped, 1 cannot serve (e.g. port in use), 2 bad option.\n" +
            "Socket activation: the sockets systemd passes (LISTEN_FDS) are served instead of --port, --tls-port and --unix;\n" +
            "one named 'tls' in LISTEN_FDNAMES serves TLS with --tls-cert.")
        {
            HelpName = Name, // not the executable's name less its "extension" (TinyServer)
        };
        foreach (Setting setting in All)
        {
            root.Options.Add(new Option<string[]>(setting.Switch)
            {
                Description = Describe(setting),
                HelpName = "VALUE",
                Arity = setting.Flag ? ArgumentArity.ZeroOrMore : ArgumentArity.OneOrMore,
                AllowMultipleArgumentsPerToken = false,
            });
        }

        return root;
    }

    /// <summary>Parses a command line; <c>--port=</c> gives --port an empty value (System.CommandLine alone would read no value).</summary>
    public static ParseResult Parse(IReadOnlyList<string> args) =>
        Create().Parse([.. args.SelectMany(arg => arg.StartsWith("--", StringComparison.Ordinal) && arg.EndsWith('=') && All.Any(s => s.Switch == arg[..^1])
            ? new[] { arg[..^1], "" }
            : [arg])]);

    /// <summary>
    /// The settings written on a parsed command line, key to values (a flag without a value is "true"), or null when it
    /// asks for help, the version or completions. A mistake is an <see cref="OptionsException"/>.
    /// </summary>
    public static Dictionary<string, string[]>? Read(ParseResult parsed)
    {
        if (parsed.Tokens.Any(t => t.Type == TokenType.Directive))
        {
            return null; // [suggest]: the completions of a partial command line, which need not parse.
        }

        if (parsed.UnmatchedTokens.Count > 0)
        {
            throw new OptionsException($"unknown option '{parsed.UnmatchedTokens[0]}' (see --help)");
        }

        foreach (ParseError error in parsed.Errors)
        {
            throw new OptionsException(error.SymbolResult is OptionResult { Tokens.Count: 0, Option: { } option }
                ? $"option {option.Name} needs a value"
                : error.Message);
        }

        if (parsed.Action is not null)
        {
            return null;
        }

        var values = new Dictionary<string, string[]>(StringComparer.Ordinal);
        foreach (Setting setting in All)
        {
            if (parsed.GetResult(setting.Switch) is not OptionResult { Implicit: false } result)
            {
                continue;
            }

            int given = parsed.Tokens.Count(t => t.Type == TokenType.Option && t.Value == setting.Switch);
            if (given > 1 && !setting.Repeatable)
            {
                throw new OptionsException($"option {setting.Switch} is given twice");
            }

            values[setting.Key] = result.Tokens.Count == 0 ? ["true"] : [.. result.Tokens.Select(t => t.Value)];
        }

        return values;
    }

    private static string Describe(Setting setting)
    {
        string range = setting.Range switch
        {
            PortAttribute port => $" ({port.Minimum}-{port.Maximum}, or 0 for any free port)",
            RangeAttribute other => $" ({other.Minimum}-{other.Maximum})",
            null => "",
        };
        return $"{setting.Help}{range}; default {setting.Default}; env {setting.EnvironmentVariable}";
    }
}
