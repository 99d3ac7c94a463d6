using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using TinyServer.LoadGen.Tests.Infrastructure;

namespace TinyServer.LoadGen.Tests;

/// <summary>
/// A -d run that ends early because no connection is left reports the time it really took, and connect errors say
/// why: a closed port once gave "requests 0 in 2.000 s" and "connect 5" after 0.16 s.
/// </summary>
[Trait("Tier", "unit")]
public sealed partial class EarlyEndTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_closed_port_is_reported_as_connection_refused_with_the_real_elapsed_time(bool tls)
    {
        int port = ClosedPort();
        string[] driver = tls ? ["--tls", "--insecure"] : [];
        var clock = Stopwatch.StartNew();

        RunOutput run = await LoadGenerator.RunTextAsync(port, ["-d", "5", "-c", "5", .. driver]);

        double wall = clock.Elapsed.TotalSeconds;
        Assert.Equal(1, run.ExitCode);
        Assert.Contains($"errors        5 (connect 5: connection refused 127.0.0.1:{port}, lost 0, timeout 0, wrong_reply 0)\n", run.Output, StringComparison.Ordinal);
        Match requests = RequestsLine().Match(run.Output);
        Assert.True(requests.Success, run.Output);
        double reported = double.Parse(requests.Groups["seconds"].Value, CultureInfo.InvariantCulture);
        Assert.True(reported < 1 && reported <= wall, $"reported {reported} s, the run took {wall:F3} s of -d 5:\n{run.Output}");
        Assert.Contains("ended early: no connection left", requests.Value, StringComparison.Ordinal);
        Assert.True(wall < 4, $"the run took {wall:F3} s");
    }

    [Fact]
    public async Task The_json_report_has_the_real_elapsed_time_and_the_reason_of_each_connect_error()
    {
        int port = ClosedPort();

        RunOutput run = await LoadGenerator.RunJsonAsync(port, "-d", "5", "-c", "3");

        Assert.Equal(1, run.ExitCode);
        Assert.True(run.Json.GetProperty("duration_s").GetDouble() < 1, run.Output);
        Assert.True(run.Json.GetProperty("ended_early").GetBoolean());
        Assert.Equal($"127.0.0.1:{port}", run.Json.GetProperty("endpoint").GetString());
        Assert.Equal(3, run.Errors("connect"));
        Assert.Equal(3, run.Json.GetProperty("connect_errors").GetProperty("connection refused").GetInt64());
    }

    [Fact]
    public async Task A_run_whose_server_goes_away_ends_early_with_the_requests_of_the_time_it_ran()
    {
        // Three answers, then the server stops listening and closes: the connection's redials are refused until
        // --connect-timeout, and then no connection is left.
        int answered = 0;
        FakeServer? server = null;
        server = FakeServer.WithBanner(line =>
        {
            if (Interlocked.Increment(ref answered) <= 3)
            {
                return "ECHO hello\n";
            }

            server!.StopListening();
            return null;
        });
        await using (server)
        {
            var clock = Stopwatch.StartNew();

            RunOutput run = await LoadGenerator.RunJsonAsync(server.Port, "-d", "5", "-c", "1", "--connect-timeout", "0.5");

            Assert.Equal(1, run.ExitCode);
            Assert.Equal(3, run.Number("requests"));
            Assert.Equal(1, run.Errors("lost"));
            Assert.Equal(1, run.Errors("connect"));
            Assert.True(run.Json.GetProperty("ended_early").GetBoolean());
            double duration = run.Json.GetProperty("duration_s").GetDouble();
            Assert.True(duration < 5 && duration <= clock.Elapsed.TotalSeconds, $"duration_s {duration}, the run took {clock.Elapsed.TotalSeconds:F3} s");
            Assert.True(run.Json.GetProperty("requests_per_second").GetDouble() > 3 / 5.0, "the throughput is over the time the run had connections");
        }
    }

    [Fact]
    public async Task A_wrong_banner_is_named_as_the_reason()
    {
        await using var server = new FakeServer(_ => "HELLO\n", line => "ECHO hello\n");

        RunOutput run = await LoadGenerator.RunTextAsync(server.Port, "-d", "5", "-c", "2");

        Assert.Equal(1, run.ExitCode);
        Assert.Contains($"errors        2 (connect 2: wrong banner 127.0.0.1:{server.Port}, lost 0,", run.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_full_run_is_not_reported_as_ended_early()
    {
        await using var server = FakeServer.WithBanner(line => "ECHO hello\n");

        RunOutput run = await LoadGenerator.RunJsonAsync(server.Port, "-d", "0.5", "-c", "1");

        Assert.Equal(0, run.ExitCode);
        Assert.False(run.Json.GetProperty("ended_early").GetBoolean());
        Assert.Equal(0.5, run.Json.GetProperty("duration_s").GetDouble());
        Assert.Empty(run.Json.GetProperty("connect_errors").EnumerateObject());
    }

    /// <summary>A port on 127.0.0.1 that nothing listens on (bound, then released).</summary>
    private static int ClosedPort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    [GeneratedRegex(@"^requests +0 in (?<seconds>\d+\.\d+) s.*$", RegexOptions.Multiline)]
    private static partial Regex RequestsLine();
}
