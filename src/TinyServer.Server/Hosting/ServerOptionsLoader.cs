using System.Collections;
using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.Memory;
using Microsoft.Extensions.Options;

namespace TinyServer.Server;

/// <summary>
/// Reads <see cref="ServerOptions"/> through Microsoft.Extensions.Configuration from, lowest precedence first:
/// <c>appsettings.json</c> beside the executable, environment variables (<c>TINYSERVER_</c> prefix), then the command
/// line (parsed by <see cref="ServerCommand"/>). The ranges are checked by the generated <see cref="ServerOptionsValidator"/>.
/// A bad value is an <see cref="OptionsException"/> whose message names where it was written and quotes it.
/// </summary>
public static class ServerOptionsLoader
{
    public const string EnvironmentPrefix = "TINYSERVER_";

    /// <summary>Returns null when the command line asks for help, the version or completions.</summary>
    public static ServerOptions? Load(IReadOnlyList<string> args, IDictionary environment, string? settingsFile) =>
        Load(args, environment, settingsFile, out _);

    /// <summary>
    /// Returns null when the command line asks for something else than serving: <paramref name="commandLine"/>'s
    /// <see cref="ParseResult.Invoke"/> then writes the help, the version or the completions.
    /// </summary>
    public static ServerOptions? Load(IReadOnlyList<string> args, IDictionary environment, string? settingsFile, out ParseResult commandLine)
    {
        commandLine = ServerCommand.Parse(args);
        if (ServerCommand.Read(commandLine) is not { } written)
        {
            return null;
        }

        var builder = new ConfigurationBuilder();
        var labels = new List<Func<Setting, string>>();
        if (settingsFile is not null && File.Exists(settingsFile))
        {
            builder.AddJsonFile(settingsFile, optional: true, reloadOnChange: false);
            labels.Add(setting => $"'{setting.Key}' in {settingsFile}");
        }

        builder.AddInMemoryCollection(Flatten(FromEnvironment(environment)));
        labels.Add(setting => $"environment variable {setting.EnvironmentVariable}");
        builder.AddInMemoryCollection(Flatten(written));
        labels.Add(setting => $"{setting.Switch} on the command line");

        IConfigurationRoot configuration;
        try
        {
            configuration = builder.Build();
        }
        catch (InvalidDataException e)
        {
            throw new OptionsException($"cannot read {settingsFile}: {e.Message}");
        }

        var sources = new Sources([.. configuration.Providers], labels);
        ServerOptions options = new Converter(configuration.Get<ServerSettings>() ?? new ServerSettings(), sources).Convert() with
        {
            InheritedSockets = SocketActivation.Read(environment, Environment.ProcessId),
        };
        ValidateOptionsResult result = new ServerOptionsValidator().Validate(Options.DefaultName, options);
        if (result.Failed)
        {
            throw new OptionsException(sources.Describe(result.Failures.First()));
        }

        if (options.ProxyProtocol && options.TrustedProxies.Count == 0)
        {
            throw new OptionsException("--proxy-protocol needs at least one --trusted-proxy ADDRESS (the balancer's address or network)");
        }

        if (!options.ProxyProtocol && options.TrustedProxies.Count > 0)
        {
            throw new OptionsException("--trusted-proxy is set but --proxy-protocol is off: no PROXY header would be read");
        }

        if (options.HealthPort is int health && health != 0 && (health == options.Port || health == options.TlsPort))
        {
            throw sources.Bad("HealthPort", $"is also {(health == options.Port ? "--port" : "--tls-port")}: the health endpoints need a port of their own (or --prometheus-port's)");
        }

        return WithTls(options, sources);
    }

    /// <summary>The TINYSERVER_* variables of the settings, key to values; only a list is split at commas (a path or a password may hold one).</summary>
    private static Dictionary<string, string[]> FromEnvironment(IDictionary environment)
    {
        var values = new Dictionary<string, string[]>(StringComparer.Ordinal);
        foreach (Setting setting in ServerCommand.All)
        {
            if (environment[setting.EnvironmentVariable] is string value)
            {
                values[setting.Key] = setting.Repeatable ? value.Split(',', StringSplitOptions.TrimEntries) : [value];
            }
        }

        return values;
    }

    // A list is written as Key:0, Key:1 (as appsettings.json's arrays are); a single value as Key.
    private static IEnumerable<KeyValuePair<string, string?>> Flatten(Dictionary<string, string[]> values) =>
        values.SelectMany(pair => ServerCommand.All.First(s => s.Key == pair.Key).Repeatable
            ? pair.Value.Select((value, i) => KeyValuePair.Create<string, string?>($"{pair.Key}:{i}", value))
            : [KeyValuePair.Create<string, string?>(pair.Key, pair.Value[^1])]);

    private static ServerOptions WithTls(ServerOptions options, Sources sources)
    {
        (string Value, string Source)? Tls(string key, bool path) =>
            sources.Find(key) is ({ } values, string source)
                ? (path && values[0].Length == 0 ? throw new OptionsException($"{source}: needs a file path") : (values[0], source))
                : null;

        var cert = Tls("TlsCert", path: true);
        var key = Tls("TlsKey", path: true);
        var password = Tls("TlsCertPassword", path: false);
        bool tlsInherited = options.InheritedSockets.Any(socket => socket.Tls);
        if (options.TlsPort is null && !tlsInherited)
        {
            return cert is var (_, certSource)
                ? throw new OptionsException($"{certSource}: a certificate needs --tls-port, the port to serve TLS on")
                : (key ?? password) is var (_, other)
                    ? throw new OptionsException($"{other}: TLS settings need --tls-port and --tls-cert")
                    : options;
        }

        if (cert is not { } certificate)
        {
            throw new OptionsException(tlsInherited
                ? $"socket activation: LISTEN_FDNAMES names a '{SocketActivation.TlsName}' socket: TLS needs --tls-cert, the certificate to serve TLS with"
                : "--tls-port needs --tls-cert, the certificate to serve TLS with");
        }

        if (options.TlsPort != 0 && options.TlsPort == options.Port)
        {
            throw new OptionsException($"--tls-port: '{options.TlsPort}' is also --port: TLS needs a port of its own");
        }

        return options with { TlsCertificate = TlsCertificateLoader.Load(certificate, key, password) };
    }

    /// <summary>Where each setting was written: the configuration providers, lowest precedence first, and how to name each.</summary>
    private sealed class Sources(IConfigurationProvider[] providers, List<Func<Setting, string>> labels)
    {
        /// <summary>The values of <paramref name="key"/> in the highest source that sets it, and that source's name.</summary>
        public (string[] Values, string Source)? Find(string key)
        {
            Setting setting = ServerCommand.All.First(s => s.Key == key);
            for (int i = providers.Length - 1; i >= 0; i--)
            {
                if (providers[i].TryGet(key, out string? value) && value is not null)
                {
                    return ([value], labels[i](setting));
                }

                string[] children = [.. providers[i].GetChildKeys([], key).Distinct(StringComparer.OrdinalIgnoreCase)];
                if (children.Length > 0)
                {
                    return ([.. children.Select(c => providers[i].TryGet($"{key}:{c}", out string? v) ? v ?? "" : "")], labels[i](setting));
                }
            }

            return null;
        }

        /// <summary>
        /// A failure of the validator ("Property: text") as one line for the operator: where the value was written, the
        /// value, and the words of the property's range attribute (the generated validator's copy of the attribute
        /// formats its own English sentence, without the attribute's ErrorMessage).
        /// </summary>
        public string Describe(string failure)
        {
            int colon = failure.IndexOf(": ", StringComparison.Ordinal);
            string property = colon > 0 ? failure[..colon] : "";
            Setting? setting = ServerCommand.All.FirstOrDefault(s => s.Property == property);
            return setting is not null && Find(setting.Key) is var (values, source)
                ? $"{source}: '{string.Join(",", values)}' {setting.Range?.FormatErrorMessage(setting.Key) ?? failure[(colon + 2)..]}"
                : failure;
        }

        public OptionsException Bad(string key, string why)
        {
            (string[] values, string source) = Find(key) ?? ([], key);
            return new OptionsException($"{source}: '{string.Join(",", values)}' {why}");
        }
    }

    /// <summary>From the texts to typed values; a text that is no value of its type is refused here, a value out of range by the validator.</summary>
    private sealed class Converter(ServerSettings settings, Sources sources)
    {
        private static readonly ServerOptions Defaults = new();

        public ServerOptions Convert() => new()
        {
            Port = Int("Port", settings.Port, Defaults.Port),
            Bind = List("Bind", Defaults.Bind, v => (IPAddress.TryParse(v, out IPAddress? a), a!), "is not a list of IP addresses (e.g. 127.0.0.1, ::1, 0.0.0.0)"),
            MaxLineLength = Int("MaxLineLength", settings.MaxLineLength, Defaults.MaxLineLength),
            MaxConnections = Int("MaxConnections", settings.MaxConnections, Defaults.MaxConnections),
            IdleTimeoutSeconds = Int("IdleTimeout", settings.IdleTimeout, Defaults.IdleTimeoutSeconds),
            MaxReadBuffer = Int("MaxReadBuffer", settings.MaxReadBuffer, Defaults.MaxReadBuffer),
            MaxWriteBuffer = Int("MaxWriteBuffer", settings.MaxWriteBuffer, Defaults.MaxWriteBuffer),
            LingerTimeoutSeconds = Int("LingerTimeout", settings.LingerTimeout, Defaults.LingerTimeoutSeconds),
            ShutdownTimeoutSeconds = Int("ShutdownTimeout", settings.ShutdownTimeout, Defaults.ShutdownTimeoutSeconds),
            DrainDelaySeconds = Int("DrainDelay", settings.DrainDelay, Defaults.DrainDelaySeconds),
            HealthPort = settings.HealthPort is null ? null : Int("HealthPort", settings.HealthPort, 0),
            Transport = settings.Transport switch
            {
                null => Defaults.Transport,
                "epoll" when OperatingSystem.IsLinux() => TransportKind.Epoll,
                "epoll" => throw sources.Bad("Transport", "needs Linux: use sockets"),
                "sockets" => TransportKind.Sockets,
                _ => throw sources.Bad("Transport", "is not a transport: use epoll or sockets"),
            },
            IoThreads = Int("IoThreads", settings.IoThreads, Defaults.IoThreads),
            InlineIo = Bool("InlineIo", settings.InlineIo, Defaults.InlineIo),
            IoQueues = Int("IoQueues", settings.IoQueues, Defaults.IoQueues),
            WaitForData = Bool("WaitForData", settings.WaitForData, Defaults.WaitForData),
            LogLevel = Named("LogLevel", settings.LogLevel, Defaults.LogLevel, "is not a log level (Trace, Debug, Information, Warning, Error, Critical, None)"),
            UnixSocketPath = settings.Unix is null ? null : UnixPath(settings.Unix),
            UnixSocketMode = settings.UnixMode switch
            {
                null => Defaults.UnixSocketMode,
                { Length: 3 or 4 } mode when mode.All(c => c is >= '0' and <= '7') && System.Convert.ToInt32(mode, 8) <= 0x1FF => (UnixFileMode)System.Convert.ToInt32(mode, 8),
                _ => throw sources.Bad("UnixMode", "is not a file mode: use octal 0000-0777, e.g. 0660"),
            },
            TlsPort = settings.TlsPort is null ? null : Int("TlsPort", settings.TlsPort, 0),
            TlsHandshakeTimeoutSeconds = Int("TlsHandshakeTimeout", settings.TlsHandshakeTimeout, Defaults.TlsHandshakeTimeoutSeconds),
            TlsHandshakeThreads = Int("TlsHandshakeThreads", settings.TlsHandshakeThreads, Defaults.TlsHandshakeThreads),
            TlsHandshakeIdleWaitMs = Int("TlsHandshakeIdleWait", settings.TlsHandshakeIdleWait, Defaults.TlsHandshakeIdleWaitMs),
            TlsReleaseBuffers = Bool("TlsReleaseBuffers", settings.TlsReleaseBuffers, Defaults.TlsReleaseBuffers),
            ProxyProtocol = Bool("ProxyProtocol", settings.ProxyProtocol, Defaults.ProxyProtocol),
            TrustedProxies = List("TrustedProxy", Defaults.TrustedProxies, v => (TryParseNetwork(v, out IPNetwork n), n), "is not a list of IP addresses or CIDR networks (e.g. 10.0.0.5, 10.0.0.0/24, fd00::/8)"),
            ProxyHeaderTimeoutSeconds = Int("ProxyHeaderTimeout", settings.ProxyHeaderTimeout, Defaults.ProxyHeaderTimeoutSeconds),
            MaxConnectionsPerAddress = Int("MaxConnectionsPerAddress", settings.MaxConnectionsPerAddress, Defaults.MaxConnectionsPerAddress),
            MetricsExporter = Named("MetricsExporter", settings.MetricsExporter, Defaults.MetricsExporter, "is not an exporter (none, console, otlp, prometheus)"),
            OtlpEndpoint = settings.OtlpEndpoint switch
            {
                null => Defaults.OtlpEndpoint,
                string text when Uri.TryCreate(text, UriKind.Absolute, out Uri? endpoint) && endpoint.Scheme is "http" or "https" => endpoint,
                _ => throw sources.Bad("OtlpEndpoint", "is not an http:// or https:// URL"),
            },
            OtlpProtocol = Named("OtlpProtocol", settings.OtlpProtocol, Defaults.OtlpProtocol, "is not an OTLP protocol (grpc, http)"),
            PrometheusPort = Int("PrometheusPort", settings.PrometheusPort, Defaults.PrometheusPort),
            MetricsIntervalSeconds = Int("MetricsInterval", settings.MetricsInterval, Defaults.MetricsIntervalSeconds),
        };

        // A whole number; whether it is in range is the validator's to say, so a text that is none gets the range's words.
        private int Int(string key, string? text, int fallback) =>
            text is null ? fallback
                : int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int value) ? value
                : throw sources.Bad(key, ServerCommand.All.First(s => s.Key == key).Range?.FormatErrorMessage(key) ?? "is not a whole number");

        private bool Bool(string key, string? text, bool fallback) =>
            text is null ? fallback : bool.TryParse(text, out bool value) ? value : throw sources.Bad(key, "is not true or false");

        // An enum value by its name, in any case; not by its number.
        private TEnum Named<TEnum>(string key, string? text, TEnum fallback, string why)
            where TEnum : struct, Enum =>
            text is null ? fallback
                : Enum.TryParse(text, ignoreCase: true, out TEnum value) && Enum.IsDefined(value) && !int.TryParse(text, out _) && text.Trim() == text ? value
                : throw sources.Bad(key, why);

        // A list comes whole from the highest source that sets it: the sources' lists are not merged item by item.
        private IReadOnlyList<T> List<T>(string key, IReadOnlyList<T> fallback, Func<string, (bool Ok, T Value)> parse, string why)
        {
            if (sources.Find(key) is not var (values, _))
            {
                return fallback;
            }

            (bool Ok, T Value)[] parsed = [.. values.Select(parse)];
            return values.Length > 0 && parsed.All(p => p.Ok) ? [.. parsed.Select(p => p.Value).Distinct()] : throw sources.Bad(key, why);
        }

        private string UnixPath(string value)
        {
            string source = sources.Find("Unix")!.Value.Source;
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
            return Directory.Exists(directory) ? path : throw new OptionsException($"{source}: the directory '{directory}' does not exist");
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
}
