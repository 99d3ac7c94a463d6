using System.Buffers;
using System.Text;
using BenchmarkDotNet.Attributes;
using TinyServer.Protocol;

namespace TinyServer.Benchmarks;

/// <summary>
/// Framing and parsing, per command: <see cref="LineDecoder.TryReadLine"/> then <see cref="Commands.Parse"/>, for one
/// line in one segment, 16 pipelined lines in one segment (per line), and one line cut in two segments (the copying
/// path). No reply is written here: see <see cref="FormattingBenchmarks"/>.
/// </summary>
[MemoryDiagnoser]
public class ParsingBenchmarks
{
    private const int Pipeline = 16;

    private readonly LineDecoder _decoder = new();
    private ReadOnlySequence<byte> _single;
    private ReadOnlySequence<byte> _pipelined;
    private ReadOnlySequence<byte> _split;

    /// <summary>The request line; <c>PING</c> is an unknown command (<c>ERROR UNKNOWN_COMMAND</c>).</summary>
    [Params("TIME", "ECHO hello", "HELP", "QUIT", "PING")]
    public string Request { get; set; } = "ECHO hello";

    [GlobalSetup]
    public void Setup()
    {
        byte[] line = Encoding.ASCII.GetBytes(Request + "\n");
        _single = new ReadOnlySequence<byte>(line);
        _pipelined = new ReadOnlySequence<byte>([.. Enumerable.Repeat(line, Pipeline).SelectMany(l => l)]);
        int cut = line.Length / 2;
        var first = new Segment(line[..cut], 0);
        Segment last = first.Append(line[cut..]);
        _split = new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    [GlobalCleanup]
    public void Cleanup() => _decoder.Dispose();

    [Benchmark(Baseline = true)]
    public int SingleLine() => FrameAndParse(_single);

    /// <summary>Sixteen lines in one read; the time and allocation reported are per line.</summary>
    [Benchmark(OperationsPerInvoke = Pipeline)]
    public int Pipelined16() => FrameAndParse(_pipelined);

    /// <summary>One line whose bytes arrive in two segments: assembled in the decoder's pooled buffer.</summary>
    [Benchmark]
    public int SplitAcrossSegments() => FrameAndParse(_split);

    private int FrameAndParse(ReadOnlySequence<byte> input)
    {
        var reader = new SequenceReader<byte>(input);
        int sum = 0;
        while (_decoder.TryReadLine(ref reader, false, null, out ReadOnlySpan<byte> line) == LineStatus.Line)
        {
            sum += (int)Commands.Parse(line, out ReadOnlySpan<byte> text) + text.Length;
        }

        return sum;
    }
}
