using System.Buffers;
using BenchmarkDotNet.Attributes;
using TinyServer.Protocol;

namespace TinyServer.Benchmarks;

/// <summary>
/// The per-request work of the server without sockets: frame a line, parse it, write the reply. Each benchmark
/// reports time and bytes allocated per operation (the steady state must allocate nothing).
/// </summary>
[MemoryDiagnoser]
public class ProtocolBenchmarks
{
    private static readonly byte[] EchoLine = "ECHO hello\n"u8.ToArray();
    private static readonly byte[] Pipelined = [.. Enumerable.Range(0, 16).SelectMany(_ => EchoLine)];
    private readonly ArrayBufferWriter<byte> _output = new(64 * 1024);
    private readonly LineDecoder _decoder = new();
    private ServerSession _session = null!;
    private ReadOnlySequence<byte> _split;

    [GlobalSetup]
    public void Setup()
    {
        _session = new ServerSession(TimeProvider.System);
        var first = new Segment("ECHO he"u8.ToArray(), 0);
        _split = new ReadOnlySequence<byte>(first, 0, first.Append("llo\n"u8.ToArray()), 4);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _session.Dispose();
        _decoder.Dispose();
    }

    /// <summary>Frame, parse and answer one <c>ECHO hello</c> (the 50 ns target of the benchmark issue).</summary>
    [Benchmark(Baseline = true)]
    public int ParseAndFormatEcho()
    {
        _output.ResetWrittenCount();
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(EchoLine));
        _decoder.TryReadLine(ref reader, false, _output, out ReadOnlySpan<byte> line);
        if (Commands.Parse(line, out ReadOnlySpan<byte> text) == Command.Echo)
        {
            ReplyWriter.WriteEcho(_output, text);
        }

        return _output.WrittenCount;
    }

    /// <summary>A line split across two buffer segments (the copying path).</summary>
    [Benchmark]
    public int ParseEchoSplitAcrossSegments()
    {
        var reader = new SequenceReader<byte>(_split);
        _decoder.TryReadLine(ref reader, false, _output, out ReadOnlySpan<byte> line);
        return (int)Commands.Parse(line, out _);
    }

    /// <summary>Sixteen pipelined <c>ECHO hello</c> lines in one read, through the whole session.</summary>
    [Benchmark(OperationsPerInvoke = 16)]
    public int Session16Pipelined()
    {
        _output.ResetWrittenCount();
        _session.Process(new ReadOnlySequence<byte>(Pipelined), false, _output, out _);
        return _output.WrittenCount;
    }

    [Benchmark]
    public int FormatTime()
    {
        _output.ResetWrittenCount();
        ReplyWriter.WriteTime(_output, DateTimeOffset.Now);
        return _output.WrittenCount;
    }
}
