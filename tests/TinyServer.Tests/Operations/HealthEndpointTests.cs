using System.Collections;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using TinyServer.Server;
using TinyServer.Tests.Hardening;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Operations;

/// <summary><c>--health-port</c> and <c>--drain-delay</c> as options (their bounds: OptionBoundaryTests).</summary>
[Trait("Tier", "unit")]
public class HealthOptionTests
{
    [Fact]
    public void The_health_port_is_off_by_default_bounded_and_needs_a_port_of_its_own()
    {
        Assert.Null(Load([]).HealthPort);
        foreach (int port in new[] { 0, 1025, 1026, 49150, 49151 })
        {
            Assert.Equal(port, Load(["--health-port", $"{port}"]).HealthPort);
        }

        foreach (int port in new[] { 1024, 49152 })
        {
            OptionsException error = Assert.Throws<OptionsException>(() => Load(["--health-port", $"{port}"]));
            Assert.Contains("--health-port", error.Message, StringComparison.Ordinal);
            Assert.Contains($"'{port}'", error.Message, StringComparison.Ordinal);
        }

        // Not the line protocol's ports; the Prometheus port is shared on purpose.
        Assert.Contains("--port", Assert.Throws<OptionsException>(() => Load(["--health-port", "40000"])).Message, StringComparison.Ordinal);
        Assert.Contains("--tls-port", Assert.Throws<OptionsException>(() => Load(["--health-port", "40443", "--tls-port", "40443", "--tls-cert", "x.pem"])).Message, StringComparison.Ordinal);
        Assert.Equal(9464, Load(["--health-port", "9464", "--metrics-exporter", "prometheus"]).HealthPort);

        // From the environment, as the deploy files set them.
        ServerOptions fromEnvironment = ServerOptionsLoader.Load([], new Hashtable { ["TINYSERVER_HEALTH_PORT"] = "8081", ["TINYSERVER_DRAIN_DELAY"] = "5" }, settingsFile: null)!;
        Assert.Equal((8081, 5), (fromEnvironment.HealthPort, fromEnvironment.DrainDelaySeconds));
    }

    private static ServerOptions Load(string[] args) => ServerOptionsLoader.Load(args, new Hashtable(), settingsFile: null)!;
}

/// <summary>
/// <c>--health-port</c>: <c>/healthz</c> and <c>/readyz</c> over HTTP/1.1, outside the line protocol and its
/// connection limit, alone or sharing the Prometheus port; and the drain's phases in the <c>TinyServer</c> meter.
/// </summary>
[Trait("Tier", "process")]
public partial class HealthEndpointTests
{

    [Theory]
    [InlineData("epoll")]
    [InlineData("sockets")]
    public async Task Health_requests_speak_http_and_count_neither_as_connections_nor_against_the_limit(string transport)
    {
        await using ServerProcess server = await ServerProcess.StartAsync(
            ["--port", "0", "--bind", "127.0.0.1", "--transport", transport, "--health-port", "0", "--max-connections", "1"]);
        Uri health = await LameDuckTests.HealthUriAsync(server);
        await using RawConnection only = await RawConnection.OpenAsync(server.EndPoint);

        // The line protocol is full; the health port still answers, on fresh HTTP connections each time.
        for (int i = 0; i < 3; i++)
        {
            using HttpClient http = LameDuckTests.NewClient(health);
            http.DefaultRequestHeaders.ConnectionClose = true;
            await LameDuckTests.WaitForStatusAsync(http, "/readyz", HttpStatusCode.OK);
            Assert.Equal(HttpStatusCode.OK, await LameDuckTests.StatusAsync(http, "/healthz"));
            Assert.Equal(HttpStatusCode.NotFound, await LameDuckTests.StatusAsync(http, "/metrics"));
        }

        await using (RawConnection turnedAway = await RawConnection.ConnectAsync(server.EndPoint))
        {
            Assert.Equal(["ERROR TOO_MANY_CONNECTIONS"], await turnedAway.ReadLinesToEndAsync());
        }

        // A line-protocol request on the health port is a bad HTTP request, not a command.
        await using (RawConnection wrongPort = await RawConnection.ConnectAsync(new IPEndPoint(IPAddress.Loopback, health.Port)))
        {
            await wrongPort.SendAsync("ECHO hi\r\n\r\n");
            Assert.StartsWith("HTTP/1.1 400 ", await wrongPort.ReadLineAsync(), StringComparison.Ordinal);
        }

        Assert.Equal(0, await server.StopAsync());
        Assert.EndsWith("Stopped after 1 connections (1 more turned away at the limit): 1 connections drained, 0 aborted", server.Output[^1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_health_endpoints_share_the_prometheus_port_when_it_is_the_same()
    {
        await using ServerProcess server = await ServerProcess.StartAsync(
            ["--port", "0", "--bind", "127.0.0.1", "--health-port", "0", "--metrics-exporter", "prometheus", "--prometheus-port", "0"]);
        Uri health = await LameDuckTests.HealthUriAsync(server);
        Assert.Contains(server.Output, line => line.EndsWith($"Prometheus metrics on {health}metrics", StringComparison.Ordinal));
        using HttpClient http = LameDuckTests.NewClient(health);
        await LameDuckTests.WaitForStatusAsync(http, "/readyz", HttpStatusCode.OK);
        Assert.Equal(HttpStatusCode.OK, await LameDuckTests.StatusAsync(http, "/healthz"));
        Assert.Equal(HttpStatusCode.NotFound, await LameDuckTests.StatusAsync(http, "/elsewhere"));
        string metrics = await http.GetStringAsync("/metrics").WaitAsync(Timeouts.Read);
        Assert.Matches(DrainPhaseSample(0), metrics);
        Assert.Equal(0, await server.StopAsync());
    }

    [Fact]
    public async Task On_separate_ports_each_serves_only_its_own_paths()
    {
        int prometheusPort = FreePort();
        await using ServerProcess server = await ServerProcess.StartAsync(
            ["--port", "0", "--bind", "127.0.0.1", "--health-port", "0", "--metrics-exporter", "prometheus", "--prometheus-port", $"{prometheusPort}"]);
        Uri health = await LameDuckTests.HealthUriAsync(server);
        Assert.NotEqual(prometheusPort, health.Port);
        using HttpClient http = LameDuckTests.NewClient(health);
        using HttpClient scraper = LameDuckTests.NewClient(new Uri($"http://127.0.0.1:{prometheusPort}/"));
        await LameDuckTests.WaitForStatusAsync(http, "/readyz", HttpStatusCode.OK);
        Assert.Equal(HttpStatusCode.NotFound, await LameDuckTests.StatusAsync(http, "/metrics"));
        Assert.Equal(HttpStatusCode.OK, await LameDuckTests.StatusAsync(scraper, "/metrics"));
        Assert.Equal(HttpStatusCode.NotFound, await LameDuckTests.StatusAsync(scraper, "/readyz"));
        Assert.Equal(HttpStatusCode.NotFound, await LameDuckTests.StatusAsync(scraper, "/healthz"));
        Assert.Equal(0, await server.StopAsync());
    }

    [Fact]
    public async Task Without_a_health_port_no_health_check_assembly_is_loaded()
    {
        // As ExporterTests does for OpenTelemetry: .NET maps every assembly it loads (/proc/PID/maps).
        await using (ServerProcess plain = await ServerProcess.StartAsync(["--port", "0", "--bind", "127.0.0.1"]))
        {
            await using RawConnection connection = await RawConnection.OpenAsync(plain.EndPoint);
            Assert.DoesNotContain("HealthChecks", await File.ReadAllTextAsync($"/proc/{plain.Id}/maps"), StringComparison.Ordinal);
        }

        await using ServerProcess checking = await ServerProcess.StartAsync(["--port", "0", "--bind", "127.0.0.1", "--health-port", "0"]);
        Assert.Contains("HealthChecks", await File.ReadAllTextAsync($"/proc/{checking.Id}/maps"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_meter_reports_the_drain_phase_and_its_connections()
    {
        await using TestServer server = await TestServer.StartAsync(new ServerOptions { DrainDelaySeconds = 2 });
        using var reader = new MeterReader(server.Metrics.Meter);
        Assert.Equal(0, reader.Collect()["tinyserver.drain.phase"]);
        await using RawConnection before = await RawConnection.OpenAsync(server.EndPoint);

        Task stopping = server.StopAsync();
        Assert.Equal(1, reader.Collect()["tinyserver.drain.phase"]); // At once: the host's stop begins synchronously.
        await using RawConnection during = await RawConnection.OpenAsync(server.EndPoint);
        await during.SendAsync("ECHO lame duck\n");
        Assert.Equal("ECHO lame duck", await during.ReadLineAsync());
        Assert.Equal(1, reader.Collect()["tinyserver.drain.connections{outcome=accepted_during_delay}"]);
        Assert.False(stopping.IsCompleted);

        Assert.Equal(["ERROR SHUTTING_DOWN"], await before.ReadLinesToEndAsync());
        Assert.Equal(["ERROR SHUTTING_DOWN"], await during.ReadLinesToEndAsync());
        await stopping;
        IReadOnlyDictionary<string, long> after = reader.Collect();
        Assert.Equal(2, after["tinyserver.drain.phase"]);
        Assert.Equal((1, 2, 0), (after["tinyserver.drain.connections{outcome=accepted_during_delay}"], after["tinyserver.drain.connections{outcome=drained}"], after["tinyserver.drain.connections{outcome=aborted}"]));
    }

    private static int FreePort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }

    private static Regex DrainPhaseSample(int phase) => new($@"(?m)^tinyserver_drain_phase\{{[^}}]*\}} {phase}$");
}
