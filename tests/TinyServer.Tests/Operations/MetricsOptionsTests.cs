using TinyServer.Server;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Operations;

/// <summary>The metrics export options: defaults, bounds, bad values, and every source (command line, environment, file).</summary>
[Trait("Tier", "process")]
public class MetricsOptionsTests
{
    [Theory]
    [InlineData("--prometheus-port", 0, 65_535)]
    [InlineData("--metrics-interval", 1, 3600)]
    public void Each_limit_is_accepted_at_its_bounds_and_refused_beyond(string option, int min, int max)
    {
        foreach (int value in new[] { min, min + 1, max - 1, max })
        {
            Assert.NotNull(Load(option, value.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }

        foreach (int value in new[] { min - 1, max + 1 })
        {
            OptionsException error = Assert.Throws<OptionsException>(() => Load(option, value.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            Assert.Contains(option, error.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void The_defaults_are_the_documented_ones()
    {
        ServerOptions options = ServerOptionsLoader.Load([], new Dictionary<string, string>(), settingsFile: null)!;
        Assert.Equal((MetricsExporter.None, null, OtlpProtocol.Grpc, 9464, 10), (options.MetricsExporter, options.OtlpEndpoint, options.OtlpProtocol, options.PrometheusPort, options.MetricsIntervalSeconds));
    }

    [Theory]
    [InlineData("none", MetricsExporter.None)]
    [InlineData("console", MetricsExporter.Console)]
    [InlineData("OTLP", MetricsExporter.Otlp)]
    [InlineData("prometheus", MetricsExporter.Prometheus)]
    public void Every_exporter_is_recognised(string value, MetricsExporter expected) =>
        Assert.Equal(expected, Load("--metrics-exporter", value)!.MetricsExporter);

    [Theory]
    [InlineData("--metrics-exporter", "statsd", "is not an exporter")]
    [InlineData("--metrics-exporter", "1", "is not an exporter")]
    [InlineData("--otlp-protocol", "udp", "is not an OTLP protocol")]
    [InlineData("--otlp-endpoint", "collector:4317", "is not an http:// or https:// URL")]
    [InlineData("--otlp-endpoint", "ftp://collector/", "is not an http:// or https:// URL")]
    [InlineData("--prometheus-port", "x", "is not a port")]
    public void A_bad_value_names_the_option(string option, string value, string expected)
    {
        OptionsException error = Assert.Throws<OptionsException>(() => Load(option, value));
        Assert.StartsWith($"{option} on the command line: '{value}' {expected}", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Environment_and_settings_file_set_them_too()
    {
        string file = Path.Combine(Path.GetTempPath(), $"tinyserver-metrics-{Guid.NewGuid():N}.json");
        File.WriteAllText(file, """{ "MetricsExporter": "otlp", "OtlpEndpoint": "http://collector:4318/v1/metrics", "OtlpProtocol": "http" }""");
        try
        {
            ServerOptions options = ServerOptionsLoader.Load(
                [],
                new Dictionary<string, string> { ["TINYSERVER_PROMETHEUS_PORT"] = "9100", ["TINYSERVER_METRICS_INTERVAL"] = "30" },
                file)!;
            Assert.Equal(
                (MetricsExporter.Otlp, new Uri("http://collector:4318/v1/metrics"), OtlpProtocol.Http, 9100, 30),
                (options.MetricsExporter, options.OtlpEndpoint, options.OtlpProtocol, options.PrometheusPort, options.MetricsIntervalSeconds));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task A_bad_exporter_exits_2_with_one_line()
    {
        ProcessResult result = await ProcessRunner.RunAsync(BuiltPrograms.Dotnet, [BuiltPrograms.ServerDll, "--metrics-exporter", "statsd"]);
        Assert.Equal(2, result.ExitCode);
        Assert.Equal(
            "tinyserver: error: --metrics-exporter on the command line: 'statsd' is not an exporter (none, console, otlp, prometheus)",
            Assert.Single(result.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries)));
    }

    private static ServerOptions? Load(string option, string value) =>
        ServerOptionsLoader.Load([option, value], new Dictionary<string, string>(), settingsFile: null);
}
