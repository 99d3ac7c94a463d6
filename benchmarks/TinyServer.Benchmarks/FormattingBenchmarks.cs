using System.Buffers;
using BenchmarkDotNet.Attributes;
using TinyServer.Protocol;

namespace TinyServer.Benchmarks;

/// <summary>
/// Formatting, per reply, into an <see cref="IBufferWriter{T}"/> that is reset every operation (the server writes
/// into its output pipe the same way).
/// </summary>
[MemoryDiagnoser]
public class FormattingBenchmarks
{
    private static readonly DateTimeOffset FixedTime = new(2025, 9, 12, 17, 24, 13, TimeSpan.FromHours(-5));
    private readonly ArrayBufferWriter<byte> _output = new(64 * 1024);
    private readonly byte[] _text16 = MakeText(16);
    private readonly byte[] _text1K = MakeText(1024);
    private TimeCache _timeCache;

    /// <summary><c>TIME 2025-09-12T17:24:13-05:00</c> from a fixed time: the formatting alone.</summary>
    [Benchmark]
    public int Time()
    {
        _output.ResetWrittenCount();
        return ReplyWriter.WriteTime(_output, FixedTime);
    }

    /// <summary>Reading the local clock, then formatting: what the server did for TIME before the per-second cache.</summary>
    [Benchmark]
    public int TimeWithClock()
    {
        _output.ResetWrittenCount();
        return ReplyWriter.WriteTime(_output, TimeProvider.System.GetLocalNow());
    }

    /// <summary>What the server does for TIME: read the UTC clock, format only when the second changed (<see cref="TimeCache"/>).</summary>
    [Benchmark]
    public int TimeCached()
    {
        _output.ResetWrittenCount();
        return ReplyWriter.WriteTime(_output, _timeCache.Now(TimeProvider.System));
    }

    [Benchmark]
    public int Echo16B()
    {
        _output.ResetWrittenCount();
        return ReplyWriter.WriteEcho(_output, _text16);
    }

    [Benchmark]
    public int Echo1KiB()
    {
        _output.ResetWrittenCount();
        return ReplyWriter.WriteEcho(_output, _text1K);
    }

    [Benchmark]
    public int Help()
    {
        _output.ResetWrittenCount();
        return ReplyWriter.WriteHelp(_output);
    }

    [Benchmark]
    public int Bye()
    {
        _output.ResetWrittenCount();
        return ReplyWriter.WriteBye(_output);
    }

    [Benchmark]
    public int Banner()
    {
        _output.ResetWrittenCount();
        return ReplyWriter.WriteBanner(_output);
    }

    [Benchmark]
    public int ErrorUnknownCommand()
    {
        _output.ResetWrittenCount();
        return ReplyWriter.WriteError(_output, ErrorCode.UnknownCommand);
    }

    [Benchmark]
    public int ErrorBadArguments()
    {
        _output.ResetWrittenCount();
        return ReplyWriter.WriteError(_output, ErrorCode.BadArguments);
    }

    [Benchmark]
    public int ErrorLineTooLong()
    {
        _output.ResetWrittenCount();
        return ReplyWriter.WriteError(_output, ErrorCode.LineTooLong);
    }

    [Benchmark]
    public int ErrorTooManyConnections()
    {
        _output.ResetWrittenCount();
        return ReplyWriter.WriteError(_output, ErrorCode.TooManyConnections);
    }

    [Benchmark]
    public int ErrorIdleTimeout()
    {
        _output.ResetWrittenCount();
        return ReplyWriter.WriteError(_output, ErrorCode.IdleTimeout);
    }

    [Benchmark]
    public int ErrorShuttingDown()
    {
        _output.ResetWrittenCount();
        return ReplyWriter.WriteError(_output, ErrorCode.ShuttingDown);
    }

    private static byte[] MakeText(int length)
    {
        const string Alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
        return [.. Enumerable.Range(0, length).Select(i => (byte)Alphabet[i % Alphabet.Length])];
    }
}
