using TinyServer.LoadGen.Tests.Infrastructure;
using TinyServer.Server;

namespace TinyServer.LoadGen.Tests;

/// <summary>Short bounded runs over the server's Unix socket (the epoll loop) and its TLS port (the TLS driver).</summary>
[Trait("Tier", "unit")]
public sealed class EndpointTests : ServerTests
{
    private readonly string _unixPath = Path.Combine(Path.GetTempPath(), $"tl-{Guid.NewGuid():N}"[..15] + ".sock");

    protected override ServerOptions Options => new()
    {
        UnixSocketPath = _unixPath,
        TlsPort = 0,
        TlsCertificate = Certificates.SelfSigned(),
    };

    [Theory]
    [InlineData("1")]
    [InlineData("8")]
    public async Task A_fixed_count_over_the_unix_socket_has_no_errors(string pipeline)
    {
        RunOutput run = await LoadGenerator.RunAsync("--unix", _unixPath, "-n", "200", "-c", "4", "-P", pipeline, "--command", "ECHO hello:3,TIME:1", "--json");

        Assert.Equal(0, run.ExitCode);
        Assert.Equal(200, run.Number("requests"));
        Assert.Equal(0, run.Number("errors"));
        Assert.Equal(4, run.Number("connected"));
        Assert.Equal(_unixPath, run.Json.GetProperty("unix").GetString());
        Assert.False(run.Json.GetProperty("tls").GetBoolean());
    }

    [Fact]
    public async Task Sessions_over_the_unix_socket_reconnect()
    {
        RunOutput run = await LoadGenerator.RunAsync("--unix", _unixPath, "-n", "200", "-c", "2", "--requests-per-session", "10", "--json");

        Assert.Equal(0, run.ExitCode);
        Assert.Equal(200, run.Number("requests"));
        Assert.Equal(20, run.Number("sessions"));
        Assert.Equal(0, run.Number("errors"));
    }

    [Theory]
    [InlineData("1")]
    [InlineData("8")]
    public async Task A_fixed_count_over_tls_has_no_errors(string pipeline)
    {
        RunOutput run = await LoadGenerator.RunJsonAsync(Server.TlsPort!.Value, "--tls", "--insecure", "-n", "200", "-c", "4", "-P", pipeline, "--command", "ECHO hello:3,TIME:1,HELP:1,PING:1");

        Assert.Equal(0, run.ExitCode);
        Assert.Equal(200, run.Number("requests"));
        Assert.Equal(0, run.Number("errors"));
        Assert.Equal(4, run.Number("connected"));
        Assert.True(run.Json.GetProperty("tls").GetBoolean());
        Assert.True(run.Json.GetProperty("p99_us").GetDouble() > 0);
    }

    [Fact]
    public async Task A_timed_run_over_tls_reports_progress_and_the_text_report_names_tls()
    {
        RunOutput run = await LoadGenerator.RunTextAsync(Server.TlsPort!.Value, "--tls", "--insecure", "-d", "1", "--warmup", "0.5", "-c", "2", "-P", "4");

        Assert.Equal(0, run.ExitCode);
        Assert.Contains($"target        127.0.0.1:{Server.TlsPort} (TLS), ECHO hello", run.Output, StringComparison.Ordinal);
        Assert.Contains("errors        0 (connect 0, lost 0, timeout 0, wrong_reply 0)", run.Output, StringComparison.Ordinal);
        Assert.Contains(" warmup ", run.Progress, StringComparison.Ordinal);
        Assert.Contains("req/s", run.Progress, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_insecure_the_self_signed_certificate_is_a_connect_error()
    {
        RunOutput run = await LoadGenerator.RunJsonAsync(Server.TlsPort!.Value, "--tls", "-n", "10", "-c", "2");

        Assert.Equal(1, run.ExitCode);
        Assert.Equal(2, run.Errors("connect"));
        Assert.Equal(0, run.Number("requests"));
    }

    [Fact]
    public async Task Tls_against_the_plain_port_is_a_connect_error()
    {
        RunOutput run = await LoadGenerator.RunJsonAsync(Server.Port, "--tls", "--insecure", "-n", "10", "-c", "1");

        Assert.Equal(1, run.ExitCode);
        Assert.Equal(1, run.Errors("connect"));
    }

    [Fact]
    public async Task A_unix_path_nobody_listens_on_is_a_connect_error()
    {
        RunOutput run = await LoadGenerator.RunAsync("--unix", _unixPath + ".none", "-n", "10", "-c", "2", "--json");

        Assert.Equal(1, run.ExitCode);
        Assert.Equal(2, run.Errors("connect"));
    }

    [Theory]
    [InlineData("--insecure", "--insecure goes with --tls")]
    [InlineData("--tls|--unix|/tmp/x.sock", "--tls and --unix do not go together")]
    [InlineData("--tls=yes", "--tls takes no value")]
    public async Task Bad_endpoint_usage_exits_2(string arguments, string expected)
    {
        RunOutput run = await LoadGenerator.RunAsync(arguments.Split('|'));

        Assert.Equal(2, run.ExitCode);
        Assert.Contains(expected, run.Progress, StringComparison.Ordinal);
    }
}
