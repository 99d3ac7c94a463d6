using TinyServer.Fuzz;
using TinyServer.Tests.Infrastructure;
using Xunit.Abstractions;

namespace TinyServer.Tests.Properties;

/// <summary>
/// A bounded, in-process pass of the fuzz target (fuzz/TinyServer.Fuzz.Target/FuzzTarget.cs) over random inputs, so the
/// rules it enforces are checked on every test run without AFL: one pass with a fixed seed (the same inputs every
/// time), one with a fresh seed (new inputs every time; the seed is in the failure message), and the seed corpus.
/// </summary>
[Trait("Tier", "unit")]
public sealed class FuzzTargetTests(ITestOutputHelper log)
{
    private const int Inputs = 50_000;

    /// <summary>Pieces the random inputs are built from, besides random bytes: commands, endings, telnet.</summary>
    private static readonly byte[][] Tokens =
    [
        "TIME"u8.ToArray(), "ECHO "u8.ToArray(), "HELP"u8.ToArray(), "QUIT"u8.ToArray(), "time"u8.ToArray(), "eChO "u8.ToArray(),
        " "u8.ToArray(), "  "u8.ToArray(), "x"u8.ToArray(), "hello"u8.ToArray(), "xxxxxxxxxxxxxxxx"u8.ToArray(),
        "\n"u8.ToArray(), "\r\n"u8.ToArray(), "\r"u8.ToArray(), [0], [0x80], [0xC3, 0xA9],
        [255, 255], [255, 253], [255, 251], [255, 254], [255, 252], [255, 250], [255, 240], [255, 247], [255, 248],
        [255, 244], [255, 241], [255],
    ];

    [Fact]
    public void The_fuzz_target_holds_on_random_inputs_with_a_fixed_seed() => RunPass(seed: 20250912);

    [Fact]
    public void The_fuzz_target_holds_on_random_inputs_with_a_fresh_seed() => RunPass(Random.Shared.Next());

    [Fact]
    public void The_fuzz_target_holds_on_the_seed_corpus()
    {
        string corpus = Path.Combine(BuiltPrograms.RepositoryRoot, "fuzz", "corpus");
        string[] files = Directory.GetFiles(corpus);
        Assert.NotEmpty(files);
        foreach (string file in files)
        {
            byte[] input = File.ReadAllBytes(file);
            Exception? failure = Failure(input);
            Assert.True(failure is null, $"{Path.GetFileName(file)}: {failure}");
        }
    }

    private void RunPass(int seed)
    {
        var random = new Random(seed);
        for (int i = 0; i < Inputs; i++)
        {
            byte[] input = RandomInput(random);
            if (Failure(input) is Exception failure)
            {
                byte[] minimal = Minimize(input);
                Assert.Fail(
                    $"seed {seed}, input {i}: {failure.GetType().Name}: {failure.Message}\n"
                    + $"  input:   {Convert.ToHexString(input)}\n"
                    + $"  minimal: {Convert.ToHexString(minimal)} = {Literal.Of(minimal)}\n"
                    + $"  which breaks with: {Failure(minimal)?.Message}\n"
                    + "  (replay: write the bytes to a file, dotnet run --project fuzz/TinyServer.Fuzz -- FILE)");
            }
        }

        log.WriteLine($"seed {seed}: {Inputs} inputs passed");
    }

    /// <summary>Header bytes, then tokens and random bytes; sometimes only random bytes.</summary>
    private static byte[] RandomInput(Random random)
    {
        var input = new List<byte>
        {
            (byte)random.Next(256),
            (byte)(random.Next(3) == 0 ? 0 : random.Next(1, 64)),
            (byte)random.Next(256),
        };
        for (int i = 0; i < 4; i++)
        {
            input.Add((byte)random.Next(random.Next(2) == 0 ? 8 : 256));
        }

        int length = random.Next(random.Next(10) == 0 ? 600 : 120);
        bool tokens = random.Next(5) != 0;
        while (input.Count < length)
        {
            if (tokens && random.Next(3) != 0)
            {
                input.AddRange(Tokens[random.Next(Tokens.Length)]);
            }
            else
            {
                input.Add((byte)random.Next(256));
            }
        }

        return [.. input];
    }

    private static Exception? Failure(byte[] input)
    {
        try
        {
            FuzzTarget.Run(input);
            return null;
        }
        catch (Exception e)
        {
            return e;
        }
    }

    /// <summary>Drops bytes one at a time for as long as the input still fails.</summary>
    private static byte[] Minimize(byte[] input)
    {
        bool progress = true;
        while (progress)
        {
            progress = false;
            for (int i = input.Length - 1; i >= 0; i--)
            {
                byte[] candidate = [.. input[..i], .. input[(i + 1)..]];
                if (Failure(candidate) is not null)
                {
                    input = candidate;
                    progress = true;
                }
            }
        }

        return input;
    }
}
