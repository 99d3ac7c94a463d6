using System.Threading.Channels;

namespace TinyServer.Tests.Infrastructure;

/// <summary>
/// A running process's standard output, read line by line as it comes: every line so far (<see cref="All"/>), and
/// the lines a test has not taken yet (<see cref="Unread"/>), completed when the output ends.
/// </summary>
public sealed class OutputLines
{
    private readonly List<string> _all = [];
    private readonly Channel<string> _unread = Channel.CreateUnbounded<string>();

    public OutputLines(StreamReader output) => Pumped = PumpAsync(output);

    /// <summary>Completes when the output has ended and every line is in.</summary>
    public Task Pumped { get; }

    public ChannelReader<string> Unread => _unread.Reader;

    public IReadOnlyList<string> All
    {
        get
        {
            lock (_all)
            {
                return [.. _all];
            }
        }
    }

    private async Task PumpAsync(StreamReader output)
    {
        while (await output.ReadLineAsync() is { } line)
        {
            lock (_all)
            {
                _all.Add(line);
            }

            _unread.Writer.TryWrite(line);
        }

        _unread.Writer.TryComplete();
    }
}
