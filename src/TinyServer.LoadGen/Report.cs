using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace TinyServer.LoadGen;

/// <summary>The final report: a few aligned lines for people, or one JSON object for scripts.</summary>
internal static class Report
{
    /// <summary>The percentiles reported, with their JSON names.</summary>
    public static readonly IReadOnlyList<(string Name, double Percentile)> Percentiles =
        [("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9)];

    public static string Text(RunResult result)
    {
        LoadOptions o = result.Options;
        var text = new StringBuilder();
        void Line(string label, string value) =>
            text.Append(CultureInfo.InvariantCulture, $"{label,-14}{value}\n");

        Line("target", $"{Target(o)}{(o.Redis ? " (redis)" : "")}, {result.Workload}");
        Line("load", Load(result));
        Line("connected", F($"{result.Connected} of {o.Connections} in {result.ConnectSeconds:F2} s, {result.ConnectRetries} redialled"));
        if (o.RequestsPerSession is not null)
        {
            Line("sessions", F($"{result.Sessions} ended by QUIT"));
        }

        Line("reconnects", F($"{result.Reconnects} (resent {result.Resent}, lost {result.Lost})"));
        if (o.Tls)
        {
            Line("handshakes", F($"{result.Handshakes} in the window, {result.HandshakesPerSecond:F1}/s, {result.ResumedHandshakes} resumed"));
        }

        Line("requests", F($"{result.Requests} in {result.DurationSeconds:F3} s{(result.EndedEarly ? " (ended early: no connection left)" : "")}"));
        Line("throughput", F($"{result.RequestsPerSecond:F1} requests/s"));
        Line("loadgen cpu", F($"{result.CpuSeconds:F2} s, {result.CpuMicrosecondsPerRequest:F2} us per request"));
        Line("latency (us)", string.Join("  ", Percentiles.Select(p => F($"{p.Name} {result.Microseconds(p.Percentile):F1}")))
            + F($"  max {result.MaxMicroseconds:F1}  mean {result.MeanMicroseconds:F1}"));
        Line("errors", $"{result.Errors.Total} ({string.Join(", ", ErrorCounts.Kinds.Select(k => $"{ErrorCounts.Name(k)} {result.Errors[k]}{(k == ErrorKind.Connect ? ConnectReasons(result) : "")}"))})");
        return text.ToString();
    }

    // ": connection refused 127.0.0.1:1" for one reason; "; "-separated, each with its count, for several.
    private static string ConnectReasons(RunResult result)
    {
        IReadOnlyList<KeyValuePair<string, long>> reasons = result.Errors.ConnectReasons;
        return reasons.Count switch
        {
            0 => "",
            1 => $": {reasons[0].Key} {result.EndPoint}",
            _ => ": " + string.Join("; ", reasons.Select(r => F($"{r.Key} {result.EndPoint} ({r.Value})"))),
        };
    }

    public static string Json(RunResult result)
    {
        LoadOptions o = result.Options;
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            json.WriteString("host", o.Host);
            json.WriteNumber("port", o.Port);
            json.WriteBoolean("redis", o.Redis);
            if (o.UnixPath is null)
            {
                json.WriteNull("unix");
            }
            else
            {
                json.WriteString("unix", o.UnixPath);
            }

            json.WriteBoolean("tls", o.Tls);
            json.WriteString("command", result.Workload);
            json.WriteNumber("connections", o.Connections);
            json.WriteNumber("connected", result.Connected);
            json.WriteNumber("pipeline", o.Pipeline);
            json.WriteNumber("duration_s", Math.Round(result.DurationSeconds, 3));
            json.WriteNumber("warmup_s", o.WarmupSeconds);
            WriteOptional(json, "rate", o.Rate);
            WriteOptional(json, "requests_per_session", o.RequestsPerSession);
            json.WriteNumber("requests", result.Requests);
            json.WriteNumber("requests_per_second", Math.Round(result.RequestsPerSecond, 1));
            foreach ((string name, double percentile) in Percentiles)
            {
                json.WriteNumber($"{name}_us", Math.Round(result.Microseconds(percentile), 1));
            }

            json.WriteNumber("max_us", Math.Round(result.MaxMicroseconds, 1));
            json.WriteNumber("mean_us", Math.Round(result.MeanMicroseconds, 1));
            json.WriteNumber("errors", result.Errors.Total);
            json.WriteStartObject("errors_by_kind");
            foreach (ErrorKind kind in ErrorCounts.Kinds)
            {
                json.WriteNumber(ErrorCounts.Name(kind), result.Errors[kind]);
            }

            json.WriteEndObject();
            json.WriteStartObject("connect_errors");
            foreach ((string reason, long count) in result.Errors.ConnectReasons)
            {
                json.WriteNumber(reason, count);
            }

            json.WriteEndObject();
            json.WriteString("endpoint", result.EndPoint);
            json.WriteBoolean("ended_early", result.EndedEarly);
            json.WriteNumber("connect_s", Math.Round(result.ConnectSeconds, 3));
            json.WriteNumber("connect_retries", result.ConnectRetries);
            json.WriteNumber("sessions", result.Sessions);
            json.WriteNumber("reconnects", result.Reconnects);
            json.WriteNumber("resent", result.Resent);
            json.WriteNumber("lost", result.Lost);
            json.WriteNumber("handshakes", result.Handshakes);
            json.WriteNumber("handshakes_resumed", result.ResumedHandshakes);
            json.WriteNumber("handshakes_per_second", Math.Round(result.HandshakesPerSecond, 1));
            json.WriteNumber("loadgen_cpu_s", Math.Round(result.CpuSeconds, 3));
            json.WriteNumber("loadgen_cpu_us_per_request", Math.Round(result.CpuMicrosecondsPerRequest, 2));
            json.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length) + "\n";
    }

    private static string Target(LoadOptions o) =>
        o.UnixPath is not null ? $"unix:{o.UnixPath}" : F($"{o.Host}:{o.Port}{(o.Tls ? " (TLS)" : "")}");

    private static string Load(RunResult result)
    {
        LoadOptions o = result.Options;
        string length = o.Requests is long n ? F($"{n} requests") : F($"{o.DurationSeconds} s");
        string warmup = o.WarmupSeconds > 0 ? F($" after {o.WarmupSeconds} s warmup") : "";
        string rate = o.Rate is double r ? F($", {r} requests/s intended") : "";
        string churn = o.RequestsPerSession is int k ? F($", {k} requests a session") : "";
        return F($"{o.Connections} connections, pipeline {o.Pipeline}, {length}{warmup}{rate}{churn}");
    }

    private static void WriteOptional(Utf8JsonWriter json, string name, double? value)
    {
        if (value is double number)
        {
            json.WriteNumber(name, number);
        }
        else
        {
            json.WriteNull(name);
        }
    }

    private static string F(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
