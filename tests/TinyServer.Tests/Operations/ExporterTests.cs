using System.Net;
using System.Text;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Operations;

/// <summary>The OpenTelemetry exporters, each in a real server process with real traffic.</summary>
[Trait("Tier", "process")]
public class ExporterTests
{
    private static readonly string[] AnyPortOnLoopback = ["--port", "0", "--bind", "127.0.0.1"];

    [Fact]
    public async Task Prometheus_serves_the_TinyServer_metrics_after_traffic()
    {
        await using ServerProcess server = await ServerProcess.StartAsync([.. AnyPortOnLoopback, "--metrics-exporter", "prometheus", "--prometheus-port", "0"]);
        string url = (await server.WaitForLineAsync("Prometheus metrics on http://127.0.0.1:")).Split(' ')[^1];
        await SendTrafficAsync(server.EndPoint);

        using var http = new HttpClient { Timeout = Timeouts.Read };
        string page = await http.GetStringAsync(new Uri(url));

        Assert.Contains("tinyserver_commands_total{otel_scope_name=\"TinyServer\",command=\"ECHO\"} 2\n", page, StringComparison.Ordinal);
        Assert.Contains("tinyserver_commands_total{otel_scope_name=\"TinyServer\",command=\"QUIT\"} 1\n", page, StringComparison.Ordinal);
        Assert.Contains("tinyserver_errors_total{otel_scope_name=\"TinyServer\",code=\"UNKNOWN_COMMAND\"} 1\n", page, StringComparison.Ordinal);
        Assert.Contains("tinyserver_connections_accepted_total{otel_scope_name=\"TinyServer\"} 1\n", page, StringComparison.Ordinal);
        Assert.Contains("tinyserver_bytes_received_bytes_total{otel_scope_name=\"TinyServer\"} 27\n", page, StringComparison.Ordinal);
        Assert.Contains("tinyserver_batch_duration_microseconds_count{otel_scope_name=\"TinyServer\"}", page, StringComparison.Ordinal);

        // Anything else on that port is not found; the TinyServer port still speaks only the line protocol.
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync(new Uri(new Uri(url), "/other"))).StatusCode);
    }

    [Fact]
    public async Task The_console_exporter_prints_the_counts()
    {
        await using ServerProcess server = await ServerProcess.StartAsync([.. AnyPortOnLoopback, "--metrics-exporter", "console", "--metrics-interval", "1"]);
        await SendTrafficAsync(server.EndPoint);

        // An export a second: read them until one shows both ECHO requests (each wait is bounded).
        for (int export = 0; export < 10; export++)
        {
            await server.WaitForLineAsync("command: ECHO");
            if ((await server.WaitForLineAsync("Value: ")).Trim() == "Value: 2")
            {
                return;
            }
        }

        Assert.Fail("no export counted the two ECHO requests; output:\n" + string.Join('\n', server.Output));
    }

    [Fact]
    public async Task Otlp_posts_the_metrics_to_the_collector()
    {
        await using FakeCollector collector = await FakeCollector.StartAsync();
        await using ServerProcess server = await ServerProcess.StartAsync(
            [.. AnyPortOnLoopback, "--metrics-exporter", "otlp", "--otlp-protocol", "http", "--otlp-endpoint", collector.Url, "--metrics-interval", "1"]);
        await SendTrafficAsync(server.EndPoint);

        // Protobuf keeps strings as UTF-8: the instrument names and tag values are readable in the body. A post a
        // second: read them until one carries the traffic's counts, for at most Timeouts.Process.
        string[] wanted = ["tinyserver.commands", "UNKNOWN_COMMAND", "tinyserver.batch.duration"];
        using var deadline = new CancellationTokenSource(Timeouts.Process);
        int posts = 0;
        string last = "";
        try
        {
            while (await collector.Bodies.WaitToReadAsync(deadline.Token))
            {
                while (collector.Bodies.TryRead(out byte[]? body))
                {
                    posts++;
                    last = Encoding.UTF8.GetString(body);
                    Assert.Contains("tinyserver.connections.active", last, StringComparison.Ordinal);
                    if (wanted.All(w => last.Contains(w, StringComparison.Ordinal)))
                    {
                        return;
                    }
                }
            }
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            // Reported below.
        }

        Assert.Fail($"no OTLP post within {Timeouts.Process} carried all of {string.Join(", ", wanted)}: {posts} posts, the last without "
            + $"{string.Join(", ", wanted.Where(w => !last.Contains(w, StringComparison.Ordinal)))}; server output:\n{string.Join('\n', server.Output)}");
    }

    [Fact]
    public async Task Without_an_exporter_no_OpenTelemetry_assembly_is_loaded()
    {
        // .NET maps every assembly it loads, so /proc/PID/maps lists them; the prometheus run shows the check can fail.
        await using (ServerProcess plain = await ServerProcess.StartAsync(AnyPortOnLoopback))
        {
            await SendTrafficAsync(plain.EndPoint);
            Assert.DoesNotContain("OpenTelemetry", await File.ReadAllTextAsync($"/proc/{plain.Id}/maps"), StringComparison.Ordinal);
        }

        await using ServerProcess exporting = await ServerProcess.StartAsync([.. AnyPortOnLoopback, "--metrics-exporter", "prometheus", "--prometheus-port", "0"]);
        Assert.Contains("OpenTelemetry", await File.ReadAllTextAsync($"/proc/{exporting.Id}/maps"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Connection_logs_carry_the_remote_endpoint_rejections_included()
    {
        await using ServerProcess server = await ServerProcess.StartAsync([.. AnyPortOnLoopback, "--log-level", "Debug", "--max-connections", "1"]);
        await using RawConnection held = await RawConnection.OpenAsync(server.EndPoint);
        Assert.Matches(@"Connection \S+ from 127\.0\.0\.1:\d+ opened$", await server.WaitForLineAsync("Connection "));
        await using (RawConnection rejected = await RawConnection.ConnectAsync(server.EndPoint))
        {
            Assert.Equal(["ERROR TOO_MANY_CONNECTIONS"], await rejected.ReadLinesToEndAsync());
        }

        Assert.Matches(@"Connection \S+ from 127\.0\.0\.1:\d+ rejected: max_connections$", await server.WaitForLineAsync("Connection "));
        await held.SendAsync("QUIT\n");
        Assert.Equal(["BYE"], await held.ReadLinesToEndAsync());
        Assert.Matches(@"Connection \S+ from 127\.0\.0\.1:\d+ closed: Quit, 1 requests$", await server.WaitForLineAsync("Connection "));
    }

    /// <summary>27 request bytes: ECHO twice, one unknown command, QUIT.</summary>
    private static async Task SendTrafficAsync(IPEndPoint endPoint)
    {
        await using RawConnection client = await RawConnection.OpenAsync(endPoint);
        await client.SendAsync("ECHO one\nFOO\nECHO two\nQUIT\n");
        Assert.Equal(["ECHO one", "ERROR UNKNOWN_COMMAND", "ECHO two", "BYE"], await client.ReadLinesToEndAsync());
    }

    /// <summary>An OTLP/HTTP collector that keeps each request body posted to /v1/metrics.</summary>
    private sealed class FakeCollector : IAsyncDisposable
    {
        private readonly WebApplication _app;

        private FakeCollector(WebApplication app, string url, Channel<byte[]> bodies)
        {
            _app = app;
            Url = url;
            Bodies = bodies.Reader;
        }

        public string Url { get; }

        public ChannelReader<byte[]> Bodies { get; }

        public static async Task<FakeCollector> StartAsync()
        {
            var bodies = Channel.CreateUnbounded<byte[]>();
            WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            WebApplication app = builder.Build();
            app.MapPost("/v1/metrics", async (HttpContext context) =>
            {
                using var body = new MemoryStream();
                await context.Request.Body.CopyToAsync(body);
                bodies.Writer.TryWrite(body.ToArray());
                return Results.Ok();
            });
            await app.StartAsync().WaitAsync(Timeouts.Read);
            return new FakeCollector(app, app.Urls.Single() + "/v1/metrics", bodies);
        }

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync().WaitAsync(Timeouts.Read);
            await _app.DisposeAsync();
        }
    }
}
