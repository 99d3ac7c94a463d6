using TinyServer.LoadGen.Tests.Infrastructure;

namespace TinyServer.LoadGen.Tests;

[Trait("Tier", "unit")]
public class ArgumentParserTests
{
    [Fact]
    public void No_arguments_give_the_defaults()
    {
        LoadOptions options = ArgumentParser.Parse([])!;

        Assert.Equal("127.0.0.1", options.Host);
        Assert.Equal(40000, options.Port);
        Assert.Equal(50, options.Connections);
        Assert.Equal(1, options.Pipeline);
        Assert.Equal(5, options.DurationSeconds);
        Assert.Null(options.Requests);
        Assert.Equal([new CommandSpec("ECHO hello", 1)], options.Commands);
        Assert.Null(options.Rate);
        Assert.Null(options.RequestsPerSession);
        Assert.Equal(64, options.ConnectBatch);
        Assert.Equal(2, options.RetryAfterSeconds);
        Assert.Equal(30, options.ConnectTimeoutSeconds);
        Assert.Equal(0.05, options.RedialBackoffSeconds);
        Assert.Equal(1, options.RedialBackoffMaxSeconds);
        Assert.False(options.Json);
        Assert.False(options.Redis);
    }

    [Fact]
    public void Every_option_is_read()
    {
        LoadOptions options = ArgumentParser.Parse([
            "--host", "localhost", "--port", "1234", "-c", "3", "-P", "4", "-d", "2.5", "--warmup", "1",
            "--command", "ECHO a:3,TIME:1", "--payload-size", "10", "--rate", "100", "--requests-per-session", "7",
            "--timeout", "9", "--reply-timeout", "3", "--connect-timeout", "4", "--connect-batch", "8",
            "--retry-after", "0", "--redial-backoff", "0.2", "--redial-backoff-max", "5", "--json", "--svg", "out.svg", "--redis",
        ])!;

        Assert.Equal(
            new LoadOptions
            {
                Host = "localhost", Port = 1234, Connections = 3, Pipeline = 4, DurationSeconds = 2.5, WarmupSeconds = 1,
                Commands = options.Commands, PayloadSize = 10, Rate = 100, RequestsPerSession = 7, TimeoutSeconds = 9,
                ReplyTimeoutSeconds = 3, ConnectTimeoutSeconds = 4, ConnectBatch = 8, RetryAfterSeconds = 0,
                RedialBackoffSeconds = 0.2, RedialBackoffMaxSeconds = 5, Json = true, SvgPath = "out.svg", Redis = true,
            },
            options);
        Assert.Equal([new CommandSpec("ECHO a", 3), new CommandSpec("TIME", 1)], options.Commands);
    }

    [Fact]
    public void Long_names_and_name_equals_value_work_too()
    {
        LoadOptions options = ArgumentParser.Parse(["--connections=7", "--pipeline", "2", "--requests=100"])!;

        Assert.Equal(7, options.Connections);
        Assert.Equal(2, options.Pipeline);
        Assert.Equal(100, options.Requests);
    }

    [Theory]
    [InlineData("-h")]
    [InlineData("--help")]
    public void Help_gives_no_options(string help) => Assert.Null(ArgumentParser.Parse(["-c", "2", help]));

    [Theory]
    [InlineData("ECHO hello", "ECHO hello", 1)]
    [InlineData("TIME:5", "TIME", 5)]
    [InlineData("ECHO a\\, b", "ECHO a, b", 1)]
    [InlineData("ECHO back\\\\slash", "ECHO back\\slash", 1)]
    [InlineData("ECHO 12:30:1", "ECHO 12:30", 1)]
    [InlineData("ECHO x:y", "ECHO x:y", 1)]
    [InlineData("ECHO C:\\path", "ECHO C:\\path", 1)]
    public void A_command_is_a_line_and_an_optional_weight(string value, string line, int weight) =>
        Assert.Equal([new CommandSpec(line, weight)], ArgumentParser.ParseCommands(value));

    [Fact]
    public void A_mix_is_split_at_commas()
    {
        Assert.Equal(
            [new CommandSpec("ECHO hello", 3), new CommandSpec("TIME", 1), new CommandSpec("HELP", 2)],
            ArgumentParser.ParseCommands("ECHO hello:3,TIME:1,HELP:2"));
    }

    [Theory]
    [InlineData("--bogus")]
    [InlineData("stray")]
    [InlineData("-c")]
    [InlineData("-c", "0")]
    [InlineData("-c", "x")]
    [InlineData("-c", "-3")]
    [InlineData("-P", "0")]
    [InlineData("--port", "70000")]
    [InlineData("-d", "0")]
    [InlineData("-d", "3601")]
    [InlineData("-d", "NaN")]
    [InlineData("-n", "0")]
    [InlineData("-n", "10", "-d", "1")]
    [InlineData("-n", "10", "--warmup", "1")]
    [InlineData("--rate", "0")]
    [InlineData("--timeout", "0")]
    [InlineData("--json=yes")]
    [InlineData("--command", "")]
    [InlineData("--command", "ECHO a,,TIME")]
    [InlineData("--command", "ECHO a:0")]
    [InlineData("--command", "ECHO a:1001")]
    [InlineData("--payload-size", "0")]
    [InlineData("--host", "")]
    [InlineData("-c", "3", "4")]
    [InlineData("--json", "yes")]
    [InlineData("--version", "-c", "3")]
    [InlineData("@no-such-response-file")]
    public void Bad_usage_is_one_clear_error(params string[] args)
    {
        UsageException e = Assert.Throws<UsageException>(() => ArgumentParser.Parse(args));

        Assert.DoesNotContain('\n', e.Message);
        Assert.NotEmpty(e.Message);
    }

    [Theory]
    [InlineData("-c 0", "-c: '0' is not a whole number from 1 to 100000")]
    [InlineData("--connections=100001", "--connections: '100001' is not a whole number from 1 to 100000")]
    [InlineData("--port 0", "--port: '0' is not a whole number from 1 to 65535")]
    [InlineData("--pipeline 4097", "--pipeline: '4097' is not a whole number from 1 to 4096")]
    [InlineData("-d 0", "-d: '0' must be more than 0 seconds (at most 3600)")]
    [InlineData("--warmup -1", "--warmup: '-1' is not a number from 0 to 3600")]
    [InlineData("--rate 0.0009", "--rate: '0.0009' is not a number from 0.001 to 1000000000")]
    [InlineData("--requests-per-session 0", "--requests-per-session: '0' is not a whole number from 1 to 2147483647")]
    [InlineData("--connect-batch 100001", "--connect-batch: '100001' is not a whole number from 1 to 100000")]
    [InlineData("--connect-timeout 0", "--connect-timeout: '0' must be more than 0 seconds (at most 3600)")]
    [InlineData("--redial-backoff 0.0009", "--redial-backoff: '0.0009' is not a number from 0.001 to 60")]
    [InlineData("--redial-backoff-max 60.001", "--redial-backoff-max: '60.001' is not a number from 0.001 to 60")]
    [InlineData("--redial-backoff 0.5 --redial-backoff-max 0.499", "--redial-backoff-max (0.499) is less than --redial-backoff (0.5)")]
    [InlineData("--redial-backoff-max 0.01", "--redial-backoff-max (0.01) is less than --redial-backoff (0.05)")]
    [InlineData("--command ECHO:1001", "--command weight: '1001' is not a whole number from 1 to 1000")]
    [InlineData("-P", "-P needs a value")]
    [InlineData("--json=yes", "--json takes no value (not 'yes')")]
    [InlineData("--bogus", "unknown option --bogus (see --help)")]
    [InlineData("-c 2 stray", "unexpected argument 'stray' (the server is --host HOST --port N)")]
    public void A_bad_value_names_the_option_as_it_was_written(string args, string message) =>
        Assert.Equal(message, Assert.Throws<UsageException>(() => ArgumentParser.Parse(args.Split(' '))).Message);

    [Theory]
    [InlineData("--port", 1, 65535)]
    [InlineData("-c", 1, 100_000)]
    [InlineData("-P", 1, 4096)]
    [InlineData("--connect-batch", 1, 100_000)]
    [InlineData("--payload-size", 1, Workload.MaxPayloadSize)]
    public void A_whole_number_is_taken_at_its_limits_and_refused_past_them(string option, int min, int max)
    {
        foreach (int n in (int[])[min, min + 1, max - 1, max])
        {
            Assert.NotNull(ArgumentParser.Parse([option, n.ToString(System.Globalization.CultureInfo.InvariantCulture)]));
        }

        foreach (long n in (long[])[min - 1L, max + 1L])
        {
            Assert.Throws<UsageException>(() => ArgumentParser.Parse([option, n.ToString(System.Globalization.CultureInfo.InvariantCulture)]));
        }
    }

    [Theory]
    [InlineData("--connect-timeout", "0.001", "0", "3600", "3600.001")]
    [InlineData("--redial-backoff", "0.001", "0.0009", "60", "60.001")]
    [InlineData("--redial-backoff-max", "0.001", "0.0009", "60", "60.001", "--redial-backoff", "0.001")]
    public void Seconds_are_taken_at_their_limits_and_refused_past_them(string option, string min, string below, string max, string above, params string[] others)
    {
        double least = double.Parse(min, System.Globalization.CultureInfo.InvariantCulture);
        double most = double.Parse(max, System.Globalization.CultureInfo.InvariantCulture);
        foreach (double seconds in (double[])[least, least + 0.0001, most - 0.001, most])
        {
            string value = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            Assert.NotNull(ArgumentParser.Parse([.. others, option, value]));
        }

        foreach (string value in (string[])[below, above])
        {
            Assert.StartsWith($"{option}: '{value}' ", Assert.Throws<UsageException>(() => ArgumentParser.Parse([.. others, option, value])).Message, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("0.5", "0.5")]
    [InlineData("0.5", "0.501")]
    [InlineData("0.001", "60")]
    public void The_redial_backoff_max_may_equal_or_pass_the_first_backoff(string first, string max)
    {
        LoadOptions options = ArgumentParser.Parse(["--redial-backoff", first, "--redial-backoff-max", max])!;

        Assert.Equal(double.Parse(first, System.Globalization.CultureInfo.InvariantCulture), options.RedialBackoffSeconds);
        Assert.Equal(double.Parse(max, System.Globalization.CultureInfo.InvariantCulture), options.RedialBackoffMaxSeconds);
    }

    [Theory]
    [InlineData("0.999", 1)]
    [InlineData("1", 1)]
    [InlineData("1.001", 1.001)]
    [InlineData("60", 60)]
    public void Without_a_redial_backoff_max_the_longest_wait_is_1_or_the_redial_backoff_if_more(string first, double max) =>
        Assert.Equal(max, ArgumentParser.Parse(["--redial-backoff", first])!.RedialBackoffMaxSeconds);

    [Theory]
    [InlineData(new string[0], new[] { 0.05, 0.1, 0.2, 0.4, 0.8, 1, 1 })]
    [InlineData(new[] { "--redial-backoff", "0.3", "--redial-backoff-max", "2" }, new[] { 0.3, 0.6, 1.2, 2, 2 })]
    [InlineData(new[] { "--redial-backoff", "0.25", "--redial-backoff-max", "0.25" }, new[] { 0.25, 0.25, 0.25 })]
    public void A_connection_waits_redial_backoff_after_a_failed_redial_then_twice_as_long_up_to_the_max(string[] args, double[] waits)
    {
        LoadOptions options = ArgumentParser.Parse(args)!;
        using var run = new RunState(options, new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 1), Workload.Create(options));

        var seen = new List<double>();
        for (long wait = run.RedialBackoff; seen.Count < waits.Length; wait = run.NextRedialWait(wait))
        {
            seen.Add(Math.Round(Clock.ToSeconds(wait), 6));
        }

        Assert.Equal(waits, seen);
    }

    [Theory]
    [InlineData("-c", "3", "-c", "4")]
    [InlineData("-c", "3", "--connections", "4")]
    [InlineData("--host", "a", "--host=b")]
    public void An_option_given_twice_is_bad_usage(params string[] args) =>
        Assert.Matches("^Option '-(c|-host)' expects a single argument but 2 were provided\\.$", Assert.Throws<UsageException>(() => ArgumentParser.Parse(args)).Message);

    [Fact]
    public async Task Bad_usage_prints_one_line_on_stderr_and_exits_2()
    {
        RunOutput run = await LoadGenerator.RunAsync("-c", "0");

        Assert.Equal(2, run.ExitCode);
        Assert.Equal("tinyserver-loadgen: error: -c: '0' is not a whole number from 1 to 100000\n", run.Progress.ReplaceLineEndings("\n"));
        Assert.Equal("", run.Output);
    }
}
