using System.Globalization;
using System.Security;
using System.Text;

namespace TinyServer.LoadGen;

/// <summary>
/// Draws a run as a plain SVG picture, written by hand: latency by percentile (the HdrHistogram "spectrum", the
/// tail stretched out to the right) above requests per second over time.
/// </summary>
internal static class SvgChart
{
    private const int Width = 900;
    private const int Left = 80;
    private const int Right = 870;
    private const double NinesStep = 0.05;

    public static string Draw(RunResult result)
    {
        var svg = new StringBuilder();
        svg.Append(F($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"660\" viewBox=\"0 0 {Width} 660\" font-family=\"sans-serif\" font-size=\"12\">\n"));
        svg.Append("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
        LoadOptions o = result.Options;
        Text(svg, Left, 24, $"{o.Host}:{o.Port}  {result.Workload}  c={o.Connections} P={o.Pipeline}  "
            + F($"{result.RequestsPerSecond:F0} requests/s  p99 {result.Microseconds(99):F1} us  errors {result.Errors.Total}"), "font-size=\"14\"");
        DrawSpectrum(svg, result, top: 60, bottom: 330);
        DrawThroughput(svg, result, top: 400, bottom: 620);
        svg.Append("</svg>\n");
        return svg.ToString();
    }

    private static void DrawSpectrum(StringBuilder svg, RunResult result, int top, int bottom)
    {
        // x is the number of nines: 0 is 0%, 1 is 90%, 2 is 99%, 3 is 99.9%... so the tail gets room.
        double maxNines = Math.Clamp(Math.Ceiling(Math.Log10(Math.Max(result.Requests, 10))), 1, 6);
        var points = new List<(double X, double Y)>();
        for (double nines = 0; nines <= maxNines + 1e-9; nines += NinesStep)
        {
            points.Add((nines, Math.Max(1, result.Microseconds(100 * (1 - Math.Pow(10, -nines))))));
        }

        // y is logarithmic, a decade per grid line, so the median shows as well as a tail a thousand times longer.
        int lowDecade = (int)Math.Floor(Math.Log10(points.Min(p => p.Y)));
        int highDecade = Math.Max(lowDecade + 1, (int)Math.Ceiling(Math.Log10(Math.Max(points.Max(p => p.Y), result.MaxMicroseconds))));
        double Y(double microseconds) => bottom - ((bottom - top) * (Math.Log10(microseconds) - lowDecade) / (highDecade - lowDecade));
        Text(svg, Left, top - 12, "Latency by percentile (us, log scale)", "font-weight=\"bold\"");
        for (int decade = lowDecade; decade <= highDecade; decade++)
        {
            GridLine(svg, Y(Math.Pow(10, decade)), Math.Pow(10, decade).ToString("#,0.##", CultureInfo.InvariantCulture));
        }

        Frame(svg, top, bottom);
        for (int nines = 0; nines <= maxNines; nines++)
        {
            double x = Left + ((Right - Left) * nines / maxNines);
            string label = nines == 0 ? "0%" : (100 * (1 - Math.Pow(10, -nines))).ToString("0.#####", CultureInfo.InvariantCulture) + "%";
            Tick(svg, x, bottom, label);
        }

        Polyline(svg, points.Select(p => (Left + ((Right - Left) * p.X / maxNines), Y(p.Y))), "#1f6fb4");
    }

    private static void DrawThroughput(StringBuilder svg, RunResult result, int top, int bottom)
    {
        IReadOnlyList<Sample> samples = result.Samples;
        double xMax = Math.Max(1, samples.Count == 0 ? 1 : samples[^1].Seconds);
        double yMax = NiceCeiling(samples.Count == 0 ? 1 : samples.Max(s => s.RequestsPerSecond));
        Axes(svg, "Requests/s over time (s)", top, bottom, yMax);
        double warmup = result.Options.WarmupSeconds;
        if (warmup > 0)
        {
            double end = Left + ((Right - Left) * Math.Min(warmup, xMax) / xMax);
            svg.Append(F($"<rect x=\"{Left}\" y=\"{top}\" width=\"{end - Left:F1}\" height=\"{bottom - top}\" fill=\"#eeeeee\"/>\n"));
            Text(svg, Left + 4, top + 14, "warmup", "fill=\"#888888\"");
        }

        double step = NiceCeiling(xMax / 10);
        for (double s = 0; s <= xMax + 1e-9; s += step)
        {
            Tick(svg, Left + ((Right - Left) * s / xMax), bottom, s.ToString("0.##", CultureInfo.InvariantCulture));
        }

        var points = samples.Select(s => (Left + ((Right - Left) * s.Seconds / xMax), Scale(s.RequestsPerSecond, yMax, top, bottom))).ToList();
        Polyline(svg, points, "#c0392b");
        foreach ((double x, double y) in points)
        {
            svg.Append(F($"<circle cx=\"{x:F1}\" cy=\"{y:F1}\" r=\"2.5\" fill=\"#c0392b\"/>\n"));
        }
    }

    private static void Axes(StringBuilder svg, string title, int top, int bottom, double yMax)
    {
        Text(svg, Left, top - 12, title, "font-weight=\"bold\"");
        for (int i = 0; i <= 5; i++)
        {
            double value = yMax * i / 5;
            GridLine(svg, Scale(value, yMax, top, bottom), value.ToString("#,0.##", CultureInfo.InvariantCulture));
        }

        Frame(svg, top, bottom);
    }

    private static void GridLine(StringBuilder svg, double y, string label)
    {
        svg.Append(F($"<line x1=\"{Left}\" y1=\"{y:F1}\" x2=\"{Right}\" y2=\"{y:F1}\" stroke=\"#dddddd\"/>\n"));
        Text(svg, Left - 6, y + 4, label, "text-anchor=\"end\"");
    }

    private static void Frame(StringBuilder svg, int top, int bottom) =>
        svg.Append(F($"<polyline points=\"{Left},{top} {Left},{bottom} {Right},{bottom}\" fill=\"none\" stroke=\"black\"/>\n"));

    private static void Tick(StringBuilder svg, double x, int bottom, string label)
    {
        svg.Append(F($"<line x1=\"{x:F1}\" y1=\"{bottom}\" x2=\"{x:F1}\" y2=\"{bottom + 5}\" stroke=\"black\"/>\n"));
        Text(svg, x, bottom + 18, label, "text-anchor=\"middle\"");
    }

    private static void Polyline(StringBuilder svg, IEnumerable<(double X, double Y)> points, string colour) =>
        svg.Append(F($"<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{string.Join(' ', points.Select(p => F($"{p.X:F1},{p.Y:F1}")))}\"/>\n"));

    private static void Text(StringBuilder svg, double x, double y, string text, string attributes = "") =>
        svg.Append(F($"<text x=\"{x:F1}\" y=\"{y:F1}\" {attributes}>{SecurityElement.Escape(text)}</text>\n"));

    private static double Scale(double value, double max, int top, int bottom) => bottom - ((bottom - top) * value / max);

    /// <summary>The smallest 1, 2, 2.5 or 5 times a power of ten that is at least <paramref name="value"/>.</summary>
    private static double NiceCeiling(double value)
    {
        if (value <= 0)
        {
            return 1;
        }

        double magnitude = Math.Pow(10, Math.Floor(Math.Log10(value)));
        return new[] { 1, 2, 2.5, 5, 10 }.Select(step => step * magnitude).First(nice => nice >= value * (1 - 1e-12));
    }

    private static string F(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
