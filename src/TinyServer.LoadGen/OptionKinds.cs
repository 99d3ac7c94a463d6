using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Numerics;

namespace TinyServer.LoadGen;

/// <summary>
/// The kinds of option the load generator takes. Each option's range is given once, here: its parser checks it, its
/// help text states it, and a value outside it is one error line that names the option as it was written.
/// </summary>
internal static class OptionKinds
{
    /// <summary>A whole number from <paramref name="min"/> to <paramref name="max"/>.</summary>
    public static Option<T> Whole<T>(string[] names, string placeholder, string text, T min, T max, T? fallback = null)
        where T : struct, IBinaryInteger<T> =>
        Valued(names, placeholder, $"{text} ({min} to {max})", Default(fallback), (name, value, error) =>
            T.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out T n) && n >= min && n <= max
                ? n
                : error($"{name}: '{value}' is not a whole number from {min} to {max}"));

    /// <summary>A number from <paramref name="min"/> to <paramref name="max"/> (a fraction is fine).</summary>
    public static Option<double> Number(string[] names, string placeholder, string text, double min, double max, double? fallback = null) =>
        Valued(names, placeholder, $"{text} ({min} to {max})", Default(fallback), (name, value, error) => Within(name, value, min, max, error));

    /// <summary>Seconds, at most <see cref="LoadOptions.MaxSeconds"/>; 0 only where it means something.</summary>
    public static Option<double> Seconds(string[] names, string text, bool allowZero, double fallback)
    {
        const double max = LoadOptions.MaxSeconds;
        string range = allowZero ? $"0 to {max}" : $"more than 0, at most {max}";
        return Valued(names, "SECONDS", $"{text} ({range})", _ => fallback, (name, value, error) =>
        {
            double seconds = Within(name, value, 0, max, error);
            return allowZero || seconds > 0 ? seconds : error($"{name}: '{value}' must be more than 0 seconds (at most {max})");
        });
    }

    /// <summary>Any text but an empty one.</summary>
    public static Option<string> Text(string[] names, string placeholder, string text, string? fallback = null) =>
        Valued<string>(names, placeholder, text, fallback is null ? null : _ => fallback, (name, value, error) =>
            value.Length > 0 ? value : error($"{name} needs a value"));

    /// <summary>A value read by <paramref name="parse"/>, which throws <see cref="UsageException"/> for a bad one.</summary>
    public static Option<T> Parsed<T>(string[] names, string placeholder, string text, Func<string, T> parse, T fallback) =>
        Valued(names, placeholder, text, _ => fallback, (name, value, error) =>
        {
            try
            {
                return parse(value);
            }
            catch (UsageException e)
            {
                return error(e.Message);
            }
        });

    /// <summary>A switch: present or not, with no value.</summary>
    public static Option<bool> Flag(string name, string text) =>
        new(name) { Description = text, Arity = ArgumentArity.Zero };

    // The option as written (-c or --connections), its value, and a way to report a bad one.
    private delegate T Reader<T>(string name, string value, Func<string, T> error);

    private static double Within(string name, string value, double min, double max, Func<string, double> error) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double x) && x >= min && x <= max
            ? x
            : error($"{name}: '{value}' is not a number from {min} to {max}");

    private static Func<ArgumentResult, T>? Default<T>(T? value)
        where T : struct => value is T given ? _ => given : null;

    private static Option<T> Valued<T>(string[] names, string placeholder, string text, Func<ArgumentResult, T>? fallback, Reader<T> read) =>
        new(names[0], names[1..])
        {
            Description = text,
            HelpName = placeholder,
            DefaultValueFactory = fallback,
            CustomParser = result =>
            {
                string name = (result.Parent as OptionResult)?.IdentifierToken?.Value ?? names[0];
                return read(name, result.Tokens[0].Value, message =>
                {
                    result.AddError(message);
                    return default!;
                });
            },
        };
}
