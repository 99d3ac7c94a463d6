using System.Text.RegularExpressions;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.External;

/// <summary>
/// The scripted sessions the external clients (nc, socat) feed on standard input, and the exact output each must
/// print: the banner, then one reply line per request line, nothing else.
/// </summary>
public static class Sessions
{
    public const string Banner = "WELCOME, I'm TinyServer not pressure";
    public const string Help = "HELP TIME | ECHO <text> | HELP | QUIT";
    public const string TimePattern = @"^TIME \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$";

    /// <summary>Stands for the TIME reply in an expected output: it is matched by <see cref="TimePattern"/>.</summary>
    private const string AnyTime = "<TIME>";

    public static (string Input, string[] Expected) Get(string name) => name switch
    {
        "Lf" => (
            "TIME\nECHO Hello from client\nHELP\nQUIT\n",
            [Banner, AnyTime, "ECHO Hello from client", Help, "BYE"]),
        "CrLf" => (
            "TIME\r\nECHO Hello from client\r\nHELP\r\nQUIT\r\n",
            [Banner, AnyTime, "ECHO Hello from client", Help, "BYE"]),

        // No QUIT and no final LF: the client's half-close ends the input; the last line is still answered.
        "HalfCloseLastLineWithoutLf" => (
            "TIME\nECHO Hello from client\nHELP\nECHO last line, no LF",
            [Banner, AnyTime, "ECHO Hello from client", Help, "ECHO last line, no LF"]),

        // Case-insensitive command words and the error replies; lines after QUIT are ignored.
        "Errors" => (
            "time\nNOPE\nTIME now\nECHO\nEcho  two spaces \nquit\nECHO ignored\n",
            [Banner, AnyTime, "ERROR UNKNOWN_COMMAND", "ERROR BAD_ARGUMENTS", "ERROR BAD_ARGUMENTS", "ECHO  two spaces ", "BYE"]),
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "no such session"),
    };

    /// <summary>Asserts a clean exit, nothing on standard error, and exactly the expected lines, each ending in LF.</summary>
    public static void AssertOutput(ProcessResult result, string[] expected)
    {
        string report = $"exit code {result.ExitCode}\n--- stdout ---\n{result.StandardOutput}\n--- stderr ---\n{result.StandardError}";
        Assert.True(result.ExitCode == 0, report);
        Assert.True(result.StandardError.Length == 0, report);
        Assert.True(result.StandardOutput.EndsWith('\n'), report);
        string[] lines = result.StandardOutput[..^1].Split('\n');
        Assert.True(lines.Length == expected.Length, report);
        for (int i = 0; i < expected.Length; i++)
        {
            bool ok = expected[i] == AnyTime ? Regex.IsMatch(lines[i], TimePattern) : lines[i] == expected[i];
            Assert.True(ok, $"line {i + 1}: expected '{expected[i]}', got '{lines[i]}'\n{report}");
        }
    }
}
