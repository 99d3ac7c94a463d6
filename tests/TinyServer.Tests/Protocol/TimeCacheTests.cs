using System.Text;
using TinyServer.Protocol;

namespace TinyServer.Tests.Protocol;

/// <summary>The TIME text is formatted once per second and is always the text of the current second.</summary>
[Trait("Tier", "unit")]
public class TimeCacheTests
{
    [Fact]
    public void The_text_follows_the_clock_second_by_second()
    {
        var clock = new SteppedTime(new DateTimeOffset(2025, 9, 12, 22, 24, 13, TimeSpan.Zero), TimeSpan.FromHours(-5));
        var cache = default(TimeCache);
        Assert.Equal("2025-09-12T17:24:13-05:00", Text(cache.Now(clock)));
        clock.Now = clock.Now.AddMilliseconds(999);
        Assert.Equal("2025-09-12T17:24:13-05:00", Text(cache.Now(clock)));
        clock.Now = clock.Now.AddMilliseconds(1);
        Assert.Equal("2025-09-12T17:24:14-05:00", Text(cache.Now(clock)));
        clock.Now = clock.Now.AddDays(-400); // A clock set back is followed too.
        Assert.Equal("2024-08-08T17:24:14-05:00", Text(cache.Now(clock)));
    }

    [Fact]
    public void A_change_of_offset_shows_at_the_second_it_happens()
    {
        // A zone that moves from +01:00 to +02:00 at 2025-03-30T01:00:00Z, as Central Europe does.
        var rule = TimeZoneInfo.AdjustmentRule.CreateAdjustmentRule(
            new DateTime(2025, 1, 1), new DateTime(2025, 12, 31), TimeSpan.FromHours(1),
            TimeZoneInfo.TransitionTime.CreateFixedDateRule(new DateTime(1, 1, 1, 2, 0, 0), 3, 30),
            TimeZoneInfo.TransitionTime.CreateFixedDateRule(new DateTime(1, 1, 1, 3, 0, 0), 10, 26));
        TimeZoneInfo zone = TimeZoneInfo.CreateCustomTimeZone("cet-test", TimeSpan.FromHours(1), "cet-test", "cet-test", "cest-test", [rule]);
        var clock = new SteppedTime(new DateTimeOffset(2025, 3, 30, 0, 59, 59, TimeSpan.Zero), zone);
        var cache = default(TimeCache);
        Assert.Equal("2025-03-30T01:59:59+01:00", Text(cache.Now(clock)));
        clock.Now = clock.Now.AddSeconds(1);
        Assert.Equal("2025-03-30T03:00:00+02:00", Text(cache.Now(clock)));
    }

    [Fact]
    public void The_session_answers_from_the_cache_and_the_text_equals_a_fresh_format()
    {
        var clock = new SteppedTime(new DateTimeOffset(2030, 6, 7, 9, 30, 0, TimeSpan.Zero), TimeSpan.FromHours(-9.5));
        using var session = new ServerSession(clock);
        var output = new System.Buffers.ArrayBufferWriter<byte>();
        session.Process(Segment.Sequence([Encoding.ASCII.GetBytes("TIME\nTIME\n")]), false, output, out _);
        clock.Now = clock.Now.AddSeconds(61);
        session.Process(Segment.Sequence([Encoding.ASCII.GetBytes("TIME\n")]), false, output, out _);
        Assert.Equal("TIME 2030-06-07T00:00:00-09:30\nTIME 2030-06-07T00:00:00-09:30\nTIME 2030-06-07T00:01:01-09:30\n", Encoding.ASCII.GetString(output.WrittenSpan));
    }

    private static string Text(ReadOnlySpan<byte> text) => Encoding.ASCII.GetString(text);

    private sealed class SteppedTime(DateTimeOffset start, TimeZoneInfo zone) : TimeProvider
    {
        public SteppedTime(DateTimeOffset start, TimeSpan offset)
            : this(start, TimeZoneInfo.CreateCustomTimeZone("test", offset, "test", "test"))
        {
        }

        public DateTimeOffset Now { get; set; } = start;

        public override DateTimeOffset GetUtcNow() => Now;

        public override TimeZoneInfo LocalTimeZone => zone;
    }
}
