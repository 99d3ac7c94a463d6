using System.Text;
using TinyServer.Protocol;

namespace TinyServer.LoadGen.Tests;

[Trait("Tier", "unit")]
public class WorkloadTests
{
    private static Workload Create(string command, bool redis = false, int? payloadSize = null, int pipeline = 1) =>
        Workload.Create(new LoadOptions
        {
            Commands = ArgumentParser.ParseCommands(command),
            Redis = redis,
            PayloadSize = payloadSize,
            Pipeline = pipeline,
        });

    private static bool Matches(Workload workload, string reply) => workload.Matches(0, Encoding.UTF8.GetBytes(reply));

    [Fact]
    public void An_echo_reply_must_be_the_text_byte_for_byte()
    {
        Workload workload = Create("ECHO hello");

        Assert.Equal("ECHO hello\n"u8.ToArray(), workload.Requests[0]);
        Assert.True(Matches(workload, "ECHO hello"));
        Assert.False(Matches(workload, "ECHO hellO"));
        Assert.False(Matches(workload, "ECHO hello "));
        Assert.False(Matches(workload, "ECHO hell"));
        Assert.False(Matches(workload, "echo hello"));
        Assert.False(Matches(workload, "ERROR UNKNOWN_COMMAND"));
    }

    [Fact]
    public void Commands_are_case_insensitive_and_replies_are_not()
    {
        Workload workload = Create("echo  Spaced  ");

        Assert.True(Matches(workload, "ECHO  Spaced  "));
        Assert.False(Matches(workload, "echo  Spaced  "));
    }

    [Fact]
    public void A_time_reply_must_have_the_time_format()
    {
        Workload workload = Create("TIME");

        Assert.True(Matches(workload, "TIME 2025-09-12T17:24:13-05:00"));
        Assert.True(Matches(workload, "TIME 2026-11-29T09:32:53+00:00"));
        Assert.False(Matches(workload, "TIME 2025-09-12T17:24:13Z"));
        Assert.False(Matches(workload, "TIME 2025-09-12 17:24:13+00:00"));
        Assert.False(Matches(workload, "TIME 2025-09-12T17:24:13+0000"));
        Assert.False(Matches(workload, "ERROR BAD_ARGUMENTS"));
    }

    [Theory]
    [InlineData("HELP", "HELP TIME | ECHO <text> | HELP | QUIT")]
    [InlineData("PING", "ERROR UNKNOWN_COMMAND")]
    [InlineData("TIME now", "ERROR BAD_ARGUMENTS")]
    [InlineData("ECHO   ", "ERROR BAD_ARGUMENTS")]
    public void Other_commands_expect_their_fixed_reply_errors_included(string command, string reply)
    {
        Workload workload = Create(command);

        Assert.True(Matches(workload, reply));
        Assert.False(Matches(workload, reply + "x"));
    }

    [Fact]
    public void Quit_is_not_a_load_command() => Assert.Throws<UsageException>(() => Create("QUIT"));

    [Fact]
    public void The_payload_size_sets_the_echo_text()
    {
        Workload workload = Create("ECHO hello:2,TIME:1", payloadSize: 100);

        Assert.Equal(5 + 100 + 1, workload.Requests[0].Length);
        Assert.True(workload.Matches(0, workload.Requests[0].AsSpan(0, 105)));
        Assert.Equal("ECHO <100 bytes>:2,TIME:1", workload.Description);
        Assert.Throws<UsageException>(() => Create("TIME", payloadSize: 100));
    }

    [Fact]
    public void A_pipeline_of_big_requests_is_capped_but_one_big_request_is_not()
    {
        // 16 requests of "ECHO " + payload + LF: 65,536 bytes each is exactly the 1 MiB allowed in flight.
        Assert.Equal(65_536, Create("ECHO x", payloadSize: 65_530, pipeline: 16).LongestRequest);
        Assert.Throws<UsageException>(() => Create("ECHO x", payloadSize: 65_531, pipeline: 16));
        Assert.Equal(1_000_006, Create("ECHO x", payloadSize: 1_000_000).LongestRequest);
    }

    [Fact]
    public void A_weighted_mix_is_interleaved()
    {
        Workload workload = Create("ECHO a:3,TIME:1");

        Assert.Equal([0, 0, 1, 0], workload.Schedule);
    }

    [Fact]
    public void Redis_commands_are_inline_and_replies_are_resp()
    {
        Workload workload = Create("ECHO hello:1,PING:1,PING word:1,TIME:1", redis: true);

        Assert.Equal("ECHO hello\r\n"u8.ToArray(), workload.Requests[0]);
        Assert.True(workload.Matches(0, "$5\r\nhello\r\n"u8));
        Assert.False(workload.Matches(0, "-ERR unknown command 'ECHO'\r\n"u8));
        Assert.True(workload.Matches(1, "+PONG\r\n"u8));
        Assert.True(workload.Matches(2, "$4\r\nword\r\n"u8));
        Assert.True(workload.Matches(3, "*2\r\n$10\r\n1700000000\r\n$6\r\n123456\r\n"u8));
        Assert.False(workload.Matches(3, "*2\r\n$10\r\n17000000x0\r\n$6\r\n123456\r\n"u8));
        Assert.Equal("QUIT\r\n"u8.ToArray(), workload.Quit);
        Assert.True(workload.Matches(Workload.QuitIndex, "+OK\r\n"u8));
    }

    [Theory]
    [InlineData("ECHO two words")]
    [InlineData("ECHO \"quoted\"")]
    [InlineData("GET key")]
    [InlineData("TIME now")]
    public void Redis_mode_refuses_what_it_cannot_check(string command) =>
        Assert.Throws<UsageException>(() => Create(command, redis: true));

    [Fact]
    public void The_time_check_accepts_what_the_server_writes()
    {
        var writer = new System.Buffers.ArrayBufferWriter<byte>();
        ReplyWriter.WriteTime(writer, new DateTimeOffset(2025, 9, 12, 17, 24, 13, TimeSpan.FromHours(-5)));

        Assert.True(ReplyReader.IsTimeReply(writer.WrittenSpan[..^1]));
        Assert.False(ReplyReader.IsTimeReply(writer.WrittenSpan));
    }
}
