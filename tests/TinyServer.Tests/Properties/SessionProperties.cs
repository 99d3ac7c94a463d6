using CsCheck;
using TinyServer.Protocol;
using TinyServer.Tests.Protocol;
using Xunit.Abstractions;

namespace TinyServer.Tests.Properties;

/// <summary>
/// Property-based tests of <see cref="ServerSession"/> against <see cref="ReferenceModel"/>: random conversations
/// (commands in any case, arguments with NUL, CR, 255, spaces; junk; empty lines; CR/LF endings; telnet commands
/// between and inside lines; over-long lines), cut at random places, with random output budgets and half-close.
/// On a failure CsCheck prints the shrunk case (pieces, and chunks as pasteable Latin-1 literals) and the seed;
/// <c>CsCheck_Seed=... dotnet test --filter ...</c> replays it.
/// </summary>
[Trait("Tier", "unit")]
public sealed class SessionProperties(ITestOutputHelper log)
{
    /// <summary>Cases per property; the environment variable <c>CsCheck_Iter</c> (or <c>CsCheck_Time</c>, in seconds)
    /// overrides it for a longer run.</summary>
    private static readonly long Iterations =
        Environment.GetEnvironmentVariable("CsCheck_Iter") is null && Environment.GetEnvironmentVariable("CsCheck_Time") is null ? 5_000 : -1;

    [Fact]
    public void The_session_replies_exactly_as_the_reference_model() =>
        Check(ProtocolGen.Case, RepliesAsTheModel);

    [Fact]
    public void Replies_do_not_depend_on_segmentation_or_output_budget() =>
        Check(ProtocolGen.Case, RepliesIndependentOfCutting);

    [Fact]
    public void An_unfinished_line_never_holds_more_than_the_maximum_plus_one() =>
        Check(ProtocolGen.Case, HoldsWithinTheLimit);

    private static void RepliesAsTheModel(Case c)
    {
        ReferenceModel.Outcome expected = Model(c);
        SessionDriver.Result actual = Drive(c);
        Expect(expected.Output, actual.Output, "replies");
        Expect(expected.Close.ToString(), actual.Closed ? actual.Reason.ToString() : "None", "close");
    }

    private static void RepliesIndependentOfCutting(Case c)
    {
        // Model-free: the same bytes as cut, with the budget, or in one piece with no budget.
        SessionDriver.Result cut = Drive(c);
        SessionDriver.Result whole = SessionDriver.Run([c.Stream], c.HalfClose, c.MaxLineLength, int.MaxValue, new FixedTime(c.Offset));
        Expect(whole.Output, cut.Output, "replies (in one chunk with no budget, vs as cut)");
        Expect(whole.Closed, cut.Closed, "closed");
    }

    private static void HoldsWithinTheLimit(Case c)
    {
        SessionDriver.Result actual = Drive(c);
        int limit = c.MaxLineLength + 1;
        if (actual.MaxHeldWaiting > limit || actual.MaxHeldBytes > limit)
        {
            throw new PropertyFailure(
                $"held {actual.MaxHeldWaiting} bytes (unconsumed + HeldBytes) while waiting for input, HeldBytes up to "
                + $"{actual.MaxHeldBytes}; the limit is {limit}");
        }
    }

    /// <summary>
    /// Runs <paramref name="property"/> on <see cref="Iterations"/> cases. A failing case is first minimised
    /// (<see cref="Minimizer"/>) and the minimal case is reported along with CsCheck's shrunk one.
    /// </summary>
    private void Check(Gen<Case> gen, Action<Case> property) =>
        gen.Sample(c =>
        {
            try
            {
                property(c);
            }
            catch (Exception first)
            {
                Case minimal = Minimizer.Minimize(c, candidate => Fails(property, candidate));
                string why = Failure(property, minimal) ?? first.Message;
                throw new PropertyFailure($"minimal case: {minimal}\n  {why}\n(the case generated: see above)", first);
            }
        }, writeLine: log.WriteLine, iter: Iterations, print: c => c.ToString());

    private static bool Fails(Action<Case> property, Case c) => Failure(property, c) is not null;

    private static string? Failure(Action<Case> property, Case c)
    {
        try
        {
            property(c);
            return null;
        }
        catch (Exception e)
        {
            return e.Message;
        }
    }

    private static ReferenceModel.Outcome Model(Case c) =>
        ReferenceModel.Run(c.Stream, c.HalfClose, c.MaxLineLength, new FixedTime(c.Offset).GetLocalNow());

    private static SessionDriver.Result Drive(Case c) =>
        SessionDriver.Run(c.Chunks, c.HalfClose, c.MaxLineLength, c.OutputBudget, new FixedTime(c.Offset));

    private static void Expect(byte[] expected, byte[] actual, string what)
    {
        if (!expected.AsSpan().SequenceEqual(actual))
        {
            int at = expected.AsSpan().CommonPrefixLength(actual);
            throw new PropertyFailure(
                $"{what} differ from byte {at}\n    expected: {Literal.Of(expected)}\n    actual:   {Literal.Of(actual)}");
        }
    }

    private static void Expect<T>(T expected, T actual, string what)
    {
        if (!EqualityComparer<T>.Default.Equals(expected, actual))
        {
            throw new PropertyFailure($"{what}: expected {expected}, actual {actual}");
        }
    }
}

/// <summary>A property that does not hold; the message says how.</summary>
public sealed class PropertyFailure(string message, Exception? inner = null) : Exception(message, inner);
