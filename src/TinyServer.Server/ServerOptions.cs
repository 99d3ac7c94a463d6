using System.Collections;
using System.Globalization;
using System.Net;
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

    private sealed record Option(string Switch, string Key, string Default, string Help, bool Repeatable = false)
    {
        public string EnvironmentVariable => EnvironmentPrefix + Switch[2..].Replace('-', '_').ToUpperInvariant();
    }

    private static readonly Option[] All =
    [
        new("--port", "Port", "40000", $"TCP port, {ServerOptions.MinPort}-{ServerOptions.MaxPort}, or 0 for any free port"),
        new("--bind", "Bind", "127.0.0.1 and ::1", "address to listen on, repeatable (0.0.0.0 or :: listens on all interfaces)", Repeatable: true),
        new("--max-line-length", "MaxLineLength", "16384", $"longest request line in bytes, line ending excluded ({ServerOptions.MinLineLengthLimit}-{ServerOptions.MaxLineLengthLimit})"),
        new("--log-level", "LogLevel", "Information", "Trace, Debug (one line per connection), Information, Warning, Error, Critical or None"),
    ];

    public static string Usage()
    {
        var text = new System.Text.StringBuilder();
        text.AppendLine("Usage: TinyServer.Server [options]");
        text.AppendLine();
        text.AppendLine("Options (also TINYSERVER_* environment variables, or appsettings.json beside the executable):");
        foreach (Option option in All)
        {
            text.Append(("  " + option.Switch + " VALUE").PadRight(26)).AppendLine(option.Help + "; default " + option.Default + "; env " + option.EnvironmentVariable);
        }

        text.AppendLine("  --help".PadRight(26) + "print this help");
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
            if (value is null)
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
                return ([.. env.Split(',', StringSplitOptions.TrimEntries)], $"environment variable {option.EnvironmentVariable}");
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
        foreach (Option option in All)
        {
            if (Find(option) is not var (values, source))
            {
                continue;
            }

            string Single() => values.Count == 1 ? values[0] : throw new OptionsException($"{source}: expected one value");
            string Bad(string why) => $"{source}: '{string.Join(",", values)}' {why}";
            options = option.Key switch
            {
                "Port" => options with
                {
                    Port = int.TryParse(Single(), NumberStyles.None, CultureInfo.InvariantCulture, out int port)
                        && (port == 0 || port is >= ServerOptions.MinPort and <= ServerOptions.MaxPort)
                        ? port
                        : throw new OptionsException(Bad($"is not a valid port: use {ServerOptions.MinPort}-{ServerOptions.MaxPort}, or 0 for any free port")),
                },
                "Bind" => options with
                {
                    Bind = values.Count > 0 && values.All(v => IPAddress.TryParse(v, out _))
                        ? [.. values.Select(IPAddress.Parse).Distinct()]
                        : throw new OptionsException(Bad("is not a list of IP addresses (e.g. 127.0.0.1, ::1, 0.0.0.0)")),
                },
                "MaxLineLength" => options with
                {
                    MaxLineLength = int.TryParse(Single(), NumberStyles.None, CultureInfo.InvariantCulture, out int max)
                        && max is >= ServerOptions.MinLineLengthLimit and <= ServerOptions.MaxLineLengthLimit
                        ? max
                        : throw new OptionsException(Bad($"is not a line length: use {ServerOptions.MinLineLengthLimit}-{ServerOptions.MaxLineLengthLimit} bytes")),
                },
                "LogLevel" => options with
                {
                    LogLevel = Enum.TryParse(Single(), ignoreCase: true, out LogLevel level) && Enum.IsDefined(level) && !int.TryParse(Single(), out _)
                        ? level
                        : throw new OptionsException(Bad("is not a log level (Trace, Debug, Information, Warning, Error, Critical, None)")),
                },
                _ => throw new InvalidOperationException(option.Key),
            };
        }

        return options;
    }
}
