using TinyServer.Server;

namespace TinyServer.Tests.Hardening;

/// <summary>Every numeric option at its bounds: the limit and one inside are accepted, one outside is refused.</summary>
[Trait("Tier", "unit")]
public class OptionBoundaryTests
{
    [Theory]
    [InlineData("--max-line-length", nameof(ServerOptions.MaxLineLength), 16, 1_048_576)]
    [InlineData("--max-connections", nameof(ServerOptions.MaxConnections), 1, 1_000_000)]
    [InlineData("--idle-timeout", nameof(ServerOptions.IdleTimeoutSeconds), 0, 86_400)]
    [InlineData("--max-read-buffer", nameof(ServerOptions.MaxReadBuffer), 4096, 67_108_864)]
    [InlineData("--max-write-buffer", nameof(ServerOptions.MaxWriteBuffer), 4096, 67_108_864)]
    [InlineData("--linger-timeout", nameof(ServerOptions.LingerTimeoutSeconds), 0, 60)]
    [InlineData("--shutdown-timeout", nameof(ServerOptions.ShutdownTimeoutSeconds), 0, 3600)]
    [InlineData("--drain-delay", nameof(ServerOptions.DrainDelaySeconds), 0, 600)]
    [InlineData("--proxy-header-timeout", nameof(ServerOptions.ProxyHeaderTimeoutSeconds), 3, 60)]
    [InlineData("--max-connections-per-address", nameof(ServerOptions.MaxConnectionsPerAddress), 0, 1_000_000)]
    [InlineData("--io-threads", nameof(ServerOptions.IoThreads), 0, 1024)]
    [InlineData("--io-queues", nameof(ServerOptions.IoQueues), 0, 64)]
    public void Each_limit_is_accepted_at_its_bounds_and_refused_beyond(string option, string property, int min, int max)
    {
        // Accepted: the value lands in its own property and every other number set by an option keeps its default.
        var defaults = new ServerOptions();
        foreach (int value in new[] { min, min + 1, max - 1, max })
        {
            ServerOptions options = Load(option, value);
            foreach (System.Reflection.PropertyInfo number in typeof(ServerOptions).GetProperties().Where(p => p.PropertyType == typeof(int) && p.SetMethod is not null))
            {
                int expected = number.Name == property ? value : (int)number.GetValue(defaults)!;
                Assert.True(expected.Equals(number.GetValue(options)), $"{option} {value}: {number.Name} is {number.GetValue(options)}, expected {expected}");
            }
        }

        // Refused, with a message that names the option and the value.
        foreach (int value in new[] { min - 1, max + 1 })
        {
            OptionsException error = Assert.Throws<OptionsException>(() => Load(option, value));
            Assert.Contains(option, error.Message, StringComparison.Ordinal);
            Assert.Contains($"'{value}'", error.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void The_PROXY_protocol_options_come_from_the_command_line_the_environment_or_the_file()
    {
        ServerOptions fromArgs = ServerOptionsLoader.Load(
            ["--proxy-protocol", "--trusted-proxy", "10.0.0.5", "--trusted-proxy", "fd00::/8", "--trusted-proxy", "::ffff:10.0.0.6", "--proxy-header-timeout", "7", "--max-connections-per-address", "3"],
            new Dictionary<string, string>(),
            settingsFile: null)!;
        Assert.True(fromArgs.ProxyProtocol);
        Assert.Equal(["10.0.0.5/32", "fd00::/8", "10.0.0.6/32"], fromArgs.TrustedProxies.Select(n => n.ToString()));
        Assert.Equal((7, 3), (fromArgs.ProxyHeaderTimeoutSeconds, fromArgs.MaxConnectionsPerAddress));

        ServerOptions fromEnvironment = ServerOptionsLoader.Load(
            [], new Dictionary<string, string> { ["TINYSERVER_PROXY_PROTOCOL"] = "true", ["TINYSERVER_TRUSTED_PROXY"] = "10.0.0.0/8, 127.0.0.3" }, settingsFile: null)!;
        Assert.True(fromEnvironment.ProxyProtocol);
        Assert.Equal(["10.0.0.0/8", "127.0.0.3/32"], fromEnvironment.TrustedProxies.Select(n => n.ToString()));

        string file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, """{ "ProxyProtocol": true, "TrustedProxy": ["192.168.0.0/16"], "ProxyHeaderTimeout": 10, "MaxConnectionsPerAddress": 50 }""");
            ServerOptions fromFile = ServerOptionsLoader.Load([], new Dictionary<string, string>(), file)!;
            Assert.True(fromFile.ProxyProtocol);
            Assert.Equal(("192.168.0.0/16", 10, 50), (fromFile.TrustedProxies.Single().ToString(), fromFile.ProxyHeaderTimeoutSeconds, fromFile.MaxConnectionsPerAddress));
        }
        finally
        {
            File.Delete(file);
        }

        Assert.False(ServerOptionsLoader.Load(["--proxy-protocol=false"], new Dictionary<string, string>(), null)!.ProxyProtocol);
    }

    [Fact]
    public void The_transport_options_parse_and_refuse_bad_values()
    {
        ServerOptions options = ServerOptionsLoader.Load(
            ["--transport", "sockets", "--io-threads", "3", "--inline-io", "false", "--io-queues", "0", "--wait-for-data", "False", "--tls-release-buffers", "true"],
            new Dictionary<string, string>(),
            settingsFile: null)!;
        Assert.Equal((TransportKind.Sockets, 3, false, 0, false), (options.Transport, options.IoThreads, options.InlineIo, options.IoQueues, options.WaitForData));
        Assert.True(options.TlsReleaseBuffers);
        Assert.Equal(TransportKind.Epoll, ServerOptionsLoader.Load(["--transport", "epoll"], new Dictionary<string, string>(), settingsFile: null)!.Transport);
        Assert.Equal(TransportKind.Epoll, new ServerOptions().Transport); // Linux: the documented default.
        Assert.Equal(Math.Max(1, Environment.ProcessorCount / 2), new ServerOptions().EffectiveIoThreads);
        Assert.Equal(5, new ServerOptions { IoThreads = 5 }.EffectiveIoThreads);

        foreach ((string option, string value) in new[] { ("--transport", "iouring"), ("--transport", "Epoll "), ("--inline-io", "yes"), ("--wait-for-data", "1"), ("--tls-release-buffers", "yes"), ("--io-threads", "-1") })
        {
            OptionsException error = Assert.Throws<OptionsException>(() => ServerOptionsLoader.Load([option, value], new Dictionary<string, string>(), settingsFile: null));
            Assert.Contains(option, error.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void The_defaults_are_the_documented_ones()
    {
        ServerOptions options = ServerOptionsLoader.Load([], new Dictionary<string, string>(), settingsFile: null)!;
        Assert.Equal((40000, 16384, 10_000, 300, 32768, 32768, 2, 5), (options.Port, options.MaxLineLength, options.MaxConnections, options.IdleTimeoutSeconds, options.MaxReadBuffer, options.MaxWriteBuffer, options.LingerTimeoutSeconds, options.ShutdownTimeoutSeconds));
        Assert.Equal((0, null), (options.DrainDelaySeconds, options.HealthPort));
        Assert.Equal((false, 0, 5, 0), (options.ProxyProtocol, options.TrustedProxies.Count, options.ProxyHeaderTimeoutSeconds, options.MaxConnectionsPerAddress));
        Assert.Equal((TransportKind.Epoll, 0, true, Math.Min(Environment.ProcessorCount, 16), true), (options.Transport, options.IoThreads, options.InlineIo, options.IoQueues, options.WaitForData));
        Assert.False(options.TlsReleaseBuffers);
    }

    private static ServerOptions Load(string option, int value) =>
        ServerOptionsLoader.Load([option, value.ToString(System.Globalization.CultureInfo.InvariantCulture)], new Dictionary<string, string>(), settingsFile: null)
        ?? throw new InvalidOperationException("Load returned no options (it does only for --help)");
}
