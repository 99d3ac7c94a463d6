using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace TinyServer.Tests.Infrastructure;

/// <summary>
/// Listens to one <see cref="Meter"/> object (not every meter named TinyServer in the test process): observable
/// instruments are read on <see cref="Collect"/>, histogram values are kept as they are recorded.
/// </summary>
public sealed class MeterReader : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<string, long> _latest = new(StringComparer.Ordinal);

    public MeterReader(Meter meter)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (ReferenceEquals(instrument.Meter, meter))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => _latest[Key(instrument.Name, tags)] = value);
        _listener.SetMeasurementEventCallback<double>((instrument, value, _, _) => Recorded.Enqueue((instrument.Name, value)));
        _listener.Start();
    }

    /// <summary>Every histogram value recorded since the listener started.</summary>
    public ConcurrentQueue<(string Instrument, double Value)> Recorded { get; } = new();

    /// <summary>Reads every observable instrument now; returns "name" or "name{tag=value}" to its value.</summary>
    public IReadOnlyDictionary<string, long> Collect()
    {
        _latest.Clear();
        _listener.RecordObservableInstruments();
        return new Dictionary<string, long>(_latest, StringComparer.Ordinal);
    }

    /// <summary>Collects until <paramref name="key"/> reaches <paramref name="expected"/> (a close is counted just after it); at most Timeouts.Read. Returns the last value seen.</summary>
    public async Task<long> CountAsync(string key, long expected)
    {
        using var deadline = new CancellationTokenSource(Timeouts.Read);
        long value;
        while ((value = Collect().GetValueOrDefault(key)) != expected && !deadline.IsCancellationRequested)
        {
            await Task.Delay(20, CancellationToken.None);
        }

        return value;
    }

    public void Dispose() => _listener.Dispose();

    private static string Key(string name, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        if (tags.IsEmpty)
        {
            return name;
        }

        var parts = new List<string>();
        foreach (KeyValuePair<string, object?> tag in tags)
        {
            parts.Add($"{tag.Key}={tag.Value}");
        }

        return $"{name}{{{string.Join(',', parts)}}}";
    }
}
