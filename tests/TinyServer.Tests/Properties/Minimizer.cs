namespace TinyServer.Tests.Properties;

/// <summary>
/// Greedy minimisation of a failing <see cref="Case"/>, on top of CsCheck's own shrinking (which only looks for
/// smaller random cases): drop pieces, drop bytes, simplify the cutting, the budget, half-close and the limit, for as
/// long as the property still fails. What is left is usually a handful of bytes.
/// </summary>
public static class Minimizer
{
    private const int MaxAttempts = 20_000;

    public static Case Minimize(Case failing, Func<Case, bool> fails)
    {
        int attempts = 0;
        bool Try(Case candidate)
        {
            if (attempts >= MaxAttempts)
            {
                return false;
            }

            attempts++;
            return fails(candidate);
        }

        Case best = failing;
        bool progress = true;
        while (progress && attempts < MaxAttempts)
        {
            progress = false;
            foreach (Case candidate in Simpler(best))
            {
                if (Try(candidate))
                {
                    best = candidate;
                    progress = true;
                    break;
                }
            }
        }

        return best;
    }

    /// <summary>Every one-step simplification, most drastic first.</summary>
    private static IEnumerable<Case> Simpler(Case c)
    {
        if (c.HalfClose)
        {
            yield return c with { HalfClose = false };
        }

        if (c.OutputBudget != int.MaxValue)
        {
            yield return c with { OutputBudget = int.MaxValue };
        }

        if (c.ChunkPlan is not [int.MaxValue])
        {
            yield return c with { ChunkPlan = [int.MaxValue] };
        }

        if (c.OffsetMinutes != 0)
        {
            yield return c with { OffsetMinutes = 0 };
        }

        // Drop a piece; then merge neighbouring pieces of the same kind.
        for (int i = 0; i < c.Pieces.Length; i++)
        {
            yield return c with { Pieces = [.. c.Pieces[..i], .. c.Pieces[(i + 1)..]] };
        }

        for (int i = 0; i + 1 < c.Pieces.Length; i++)
        {
            if (c.Pieces[i].Kind == c.Pieces[i + 1].Kind && c.Pieces[i].Kind != PieceKind.Telnet)
            {
                var merged = new Piece(c.Pieces[i].Kind, [.. c.Pieces[i].Bytes, .. c.Pieces[i + 1].Bytes]);
                yield return c with { Pieces = [.. c.Pieces[..i], merged, .. c.Pieces[(i + 2)..]] };
            }
        }

        // Drop a byte of a data piece (telnet commands are kept whole, so they stay readable).
        for (int i = 0; i < c.Pieces.Length; i++)
        {
            Piece piece = c.Pieces[i];
            if (piece.Kind == PieceKind.Telnet)
            {
                continue;
            }

            for (int j = 0; j < piece.Bytes.Length; j++)
            {
                byte[] bytes = [.. piece.Bytes[..j], .. piece.Bytes[(j + 1)..]];
                Piece[] pieces = bytes.Length == 0
                    ? [.. c.Pieces[..i], .. c.Pieces[(i + 1)..]]
                    : [.. c.Pieces[..i], piece with { Bytes = bytes }, .. c.Pieces[(i + 1)..]];
                yield return c with { Pieces = pieces };
            }
        }

        // A raw piece that is really text reads better as text.
        for (int i = 0; i < c.Pieces.Length; i++)
        {
            if (c.Pieces[i].Kind == PieceKind.Raw && !c.Pieces[i].Bytes.Contains((byte)255))
            {
                yield return c with { Pieces = [.. c.Pieces[..i], c.Pieces[i] with { Kind = PieceKind.Text }, .. c.Pieces[(i + 1)..]] };
            }
        }

        if (c.MaxLineLength > 1)
        {
            yield return c with { MaxLineLength = c.MaxLineLength - 1 };
        }

        for (int i = 0; i < c.ChunkPlan.Length && c.ChunkPlan.Length > 1; i++)
        {
            yield return c with { ChunkPlan = [.. c.ChunkPlan[..i], .. c.ChunkPlan[(i + 1)..]] };
        }

        if (c.OutputBudget != int.MaxValue && c.OutputBudget > 1)
        {
            yield return c with { OutputBudget = c.OutputBudget - 1 };
        }
    }
}
