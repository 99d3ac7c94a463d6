using System.Buffers;
using System.Text;
using TinyServer.Protocol;

namespace TinyServer.Tests.Protocol;

/// <summary>The session's metric counts (commands, lines too long, bytes in and out) however the input is cut.</summary>
[Trait("Tier", "unit")]
public class SessionCounterTests
{
    public static TheoryData<int> Budgets => [int.MaxValue, 8];

    [Theory]
    [MemberData(nameof(Budgets))]
    public void Every_request_is_counted_once_by_its_command_and_every_byte_in_and_out(int outputBudget)
    {
        byte[] script = Encoding.ASCII.GetBytes("TIME\nECHO hi\nhelp\nFOO\nTIME x\nECHO\r\n\nQUIT\n");
        foreach (List<byte[]> chunks in Cuts(script))
        {
            (ServerSession session, byte[] output) = Drive(chunks, maxLineLength: 64, outputBudget);
            using (session)
            {
                Assert.Equal(CloseReason.Quit, session.CloseReason);
                Assert.Equal(
                    (1L, 1L, 1L, 1L, 2L, 2L, 0L),
                    (session.Answered(Command.Time), session.Answered(Command.Echo), session.Answered(Command.Help), session.Answered(Command.Quit),
                     session.Answered(Command.Unknown), session.Answered(Command.BadArguments), session.LinesTooLong));
                Assert.Equal(session.Requests, Enum.GetValues<Command>().Sum(c => session.Answered(c)));
                Assert.Equal(script.Length, session.BytesIn);
                Assert.Equal(output.Length, session.BytesOut);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Budgets))]
    public void A_line_too_long_is_counted_and_its_bytes_too(int outputBudget)
    {
        byte[] script = Encoding.ASCII.GetBytes("ECHO short\n" + new string('x', 40) + "\nTIME\n");
        foreach (List<byte[]> chunks in Cuts(script))
        {
            (ServerSession session, byte[] output) = Drive(chunks, maxLineLength: 16, outputBudget);
            using (session)
            {
                Assert.Equal(CloseReason.LineTooLong, session.CloseReason);
                Assert.Equal((1L, 1L, 0L), (session.Answered(Command.Echo), session.LinesTooLong, session.Answered(Command.Time)));
                Assert.Equal(output.Length, session.BytesOut);
                Assert.EndsWith("ERROR LINE_TOO_LONG\n", Encoding.ASCII.GetString(output), StringComparison.Ordinal);

                // Consumed up to the end of what was offered when the line overflowed; never more than was sent.
                Assert.InRange(session.BytesIn, 11 + 17, script.Length);
            }
        }
    }

    /// <summary>The script whole, cut in two at every byte, and one byte at a time.</summary>
    private static IEnumerable<List<byte[]>> Cuts(byte[] script)
    {
        yield return [script];
        for (int cut = 1; cut < script.Length; cut++)
        {
            yield return [script[..cut], script[cut..]];
        }

        yield return [.. script.Select(b => new[] { b })];
    }

    /// <summary>As the handler does: unconsumed bytes are offered again with the next chunk; OutputFull is called again at once.</summary>
    private static (ServerSession Session, byte[] Output) Drive(List<byte[]> chunks, int maxLineLength, int outputBudget)
    {
        var session = new ServerSession(TimeProvider.System, maxLineLength);
        var output = new ArrayBufferWriter<byte>();
        byte[] pending = [];
        foreach (byte[] chunk in chunks)
        {
            pending = [.. pending, .. chunk];
            SessionStatus status;
            do
            {
                var input = new ReadOnlySequence<byte>(pending);
                status = session.Process(input, false, output, outputBudget, out SequencePosition consumed);
                pending = input.Slice(consumed).ToArray();
            }
            while (status == SessionStatus.OutputFull);

            if (status == SessionStatus.Closed)
            {
                break;
            }
        }

        return (session, output.WrittenSpan.ToArray());
    }
}
