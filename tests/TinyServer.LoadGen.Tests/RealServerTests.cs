using System.Xml.Linq;
using TinyServer.LoadGen.Tests.Infrastructure;

namespace TinyServer.LoadGen.Tests;

/// <summary>Short runs against the real server, in process.</summary>
[Trait("Tier", "unit")]
public sealed class RealServerTests : ServerTests
{
    [Fact]
    public async Task A_fixed_count_of_mixed_pipelined_requests_is_answered_without_errors()
    {
        RunOutput run = await LoadGenerator.RunJsonAsync(Server.Port, "-n", "3000", "-c", "4", "-P", "8", "--command", "ECHO hello:3,TIME:1,HELP:1,PING:1");

        Assert.Equal(0, run.ExitCode);
        Assert.Equal(3000, run.Number("requests"));
        Assert.Equal(0, run.Number("errors"));
        Assert.Equal("ECHO hello:3,TIME:1,HELP:1,PING:1", run.Json.GetProperty("command").GetString());
    }

    [Fact]
    public async Task The_json_report_has_the_documented_fields_and_progress_goes_to_stderr()
    {
        RunOutput run = await LoadGenerator.RunJsonAsync(Server.Port, "-d", "1", "-c", "2", "-P", "2");

        Assert.Equal(0, run.ExitCode);
        foreach (string field in new[] { "requests_per_second", "p50_us", "p90_us", "p99_us", "p999_us", "max_us" })
        {
            Assert.True(run.Json.GetProperty(field).GetDouble() > 0, field);
        }

        Assert.Equal(0, run.Number("errors"));
        Assert.Equal(2, run.Number("connections"));
        Assert.Equal(2, run.Number("pipeline"));
        Assert.Equal(1, run.Json.GetProperty("duration_s").GetDouble());
        Assert.True(run.Number("requests") > 0);
        Assert.Contains("req/s", run.Progress, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_warmup_is_run_but_not_reported()
    {
        RunOutput run = await LoadGenerator.RunJsonAsync(Server.Port, "-d", "0.5", "--warmup", "0.5", "-c", "2");

        Assert.Equal(0, run.ExitCode);
        Assert.Equal(0.5, run.Json.GetProperty("duration_s").GetDouble());
        Assert.Equal(0.5, run.Json.GetProperty("warmup_s").GetDouble());
        Assert.Contains(" warmup ", run.Progress, StringComparison.Ordinal);
        Assert.True(run.Number("requests") > 0);
    }

    [Fact]
    public async Task The_text_report_names_throughput_percentiles_and_errors()
    {
        RunOutput run = await LoadGenerator.RunTextAsync(Server.Port, "-n", "200", "-c", "2");

        Assert.Equal(0, run.ExitCode);
        Assert.Contains("throughput", run.Output, StringComparison.Ordinal);
        Assert.Contains("p99.9", run.Output.Replace("p999", "p99.9", StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.Contains("errors        0 (connect 0, lost 0, timeout 0, wrong_reply 0)", run.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Fewer_requests_than_connections_end_at_once()
    {
        RunOutput run = await LoadGenerator.RunJsonAsync(Server.Port, "-n", "3", "-c", "5");

        Assert.Equal(0, run.ExitCode);
        Assert.Equal(3, run.Number("requests"));
        Assert.True(run.Json.GetProperty("duration_s").GetDouble() < 5);
    }

    [Fact]
    public async Task Sessions_of_k_requests_end_with_quit_and_reconnect()
    {
        RunOutput run = await LoadGenerator.RunJsonAsync(Server.Port, "-n", "200", "-c", "2", "-P", "4", "--requests-per-session", "10");

        Assert.Equal(0, run.ExitCode);
        Assert.Equal(200, run.Number("requests"));
        Assert.Equal(20, run.Number("sessions"));
    }

    [Fact]
    public async Task A_fixed_rate_sends_about_that_many_requests()
    {
        RunOutput run = await LoadGenerator.RunJsonAsync(Server.Port, "--rate", "400", "-c", "4", "-P", "4", "-d", "1");

        Assert.Equal(0, run.ExitCode);
        Assert.InRange(run.Number("requests"), 300, 410);
    }

    [Fact]
    public async Task Big_echo_payloads_come_back_whole()
    {
        RunOutput run = await LoadGenerator.RunJsonAsync(Server.Port, "-n", "200", "-c", "2", "-P", "4", "--payload-size", "5000");

        Assert.Equal(0, run.ExitCode);
        Assert.Equal(200, run.Number("requests"));
    }

    [Fact]
    public async Task A_line_longer_than_the_server_takes_is_a_wrong_reply_and_the_next_request_on_its_connection_is_lost()
    {
        // Each connection gets ERROR LINE_TOO_LONG, and the server closes it: the request sent after it, if any, is
        // lost, and a new connection takes the next one. No request is answered rightly.
        RunOutput run = await LoadGenerator.RunJsonAsync(Server.Port, "-n", "5", "-c", "1", "--payload-size", "20000");

        Assert.Equal(1, run.ExitCode);
        Assert.InRange(run.Errors("wrong_reply"), 1, 5);
        Assert.Equal(5, run.Errors("wrong_reply") + run.Errors("lost"));
        Assert.Equal(5, run.Number("errors"));
    }

    [Fact]
    public async Task The_svg_picture_is_well_formed()
    {
        string path = Path.Combine(Path.GetTempPath(), $"loadgen-{Guid.NewGuid():N}.svg");
        try
        {
            RunOutput run = await LoadGenerator.RunJsonAsync(Server.Port, "-n", "500", "-c", "2", "--svg", path);

            Assert.Equal(0, run.ExitCode);
            XElement svg = XDocument.Load(path).Root!;
            Assert.Equal("svg", svg.Name.LocalName);
            Assert.Equal(2, svg.Descendants().Count(e => e.Name.LocalName == "polyline" && (string?)e.Attribute("stroke-width") == "2"));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
