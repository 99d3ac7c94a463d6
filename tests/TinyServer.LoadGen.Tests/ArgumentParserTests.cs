namespace TinyServer.LoadGen.Tests;

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
            "--retry-after", "0", "--json", "--svg", "out.svg", "--redis",
        ])!;

        Assert.Equal(
            new LoadOptions
            {
                Host = "localhost", Port = 1234, Connections = 3, Pipeline = 4, DurationSeconds = 2.5, WarmupSeconds = 1,
                Commands = options.Commands, PayloadSize = 10, Rate = 100, RequestsPerSession = 7, TimeoutSeconds = 9,
                ReplyTimeoutSeconds = 3, ConnectTimeoutSeconds = 4, ConnectBatch = 8, RetryAfterSeconds = 0, Json = true,
                SvgPath = "out.svg", Redis = true,
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
    public void Bad_usage_is_one_clear_error(params string[] args)
    {
        UsageException e = Assert.Throws<UsageException>(() => ArgumentParser.Parse(args));

        Assert.DoesNotContain('\n', e.Message);
        Assert.NotEmpty(e.Message);
    }
}
