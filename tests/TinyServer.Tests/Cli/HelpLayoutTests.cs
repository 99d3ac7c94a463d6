using System.Text.RegularExpressions;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Cli;

/// <summary>
/// The layout of every program's <c>--help</c>: each entry (a line indented by two spaces) is an option column of
/// switches and placeholders, at least two spaces, then its text, and the texts of one program start in one column.
/// An option too long for the column once ran into its text (<c>--max-connections-per-address VALUEconnections</c>).
/// </summary>
public sealed partial class HelpLayoutTests
{
    public static TheoryData<string> Programs => ["server", "client", "loadgen"];

    [Theory]
    [MemberData(nameof(Programs))]
    public async Task Every_help_entry_keeps_its_placeholder_apart_from_its_text(string program)
    {
        string dll = program switch
        {
            "server" => BuiltPrograms.ServerDll,
            "client" => BuiltPrograms.ClientDll,
            _ => BuiltPrograms.LoadGenDll,
        };

        ProcessResult result = await ProcessRunner.RunAsync(BuiltPrograms.Dotnet, [dll, "--help"]);

        Assert.Equal(0, result.ExitCode);
        // System.CommandLine's generated help (the load generator's) has sections: its entries are those under "Options:".
        int options = Array.IndexOf(result.OutputLines, "Options:");
        IEnumerable<string> lines = options < 0 ? result.OutputLines : result.OutputLines.Skip(options + 1).TakeWhile(line => line.StartsWith(' '));
        string[] entries = [.. lines.Where(line => line.StartsWith("  ", StringComparison.Ordinal) && line[2] != ' ')];
        Assert.True(entries.Length >= 8, $"too few entries in the help:\n{result.StandardOutput}");
        var columns = new HashSet<int>();
        foreach (string entry in entries)
        {
            Match match = Entry().Match(entry);
            Assert.True(match.Success, $"no option column, two spaces and text in '{entry}'");
            foreach (string token in match.Groups["synopsis"].Value.Split(' '))
            {
                Assert.True(SynopsisToken().IsMatch(token), $"'{token}' is neither a switch nor a placeholder in '{entry}'");
            }

            columns.Add(match.Groups["text"].Index);
        }

        Assert.True(columns.Count == 1, $"the texts start in columns {string.Join(", ", columns)}:\n{string.Join('\n', entries)}");
    }

    [GeneratedRegex(@"^  (?<synopsis>\S+(?: \S+)*)  +(?<text>\S.*)$")]
    private static partial Regex Entry();

    /// <summary>
    /// A switch (<c>--port</c>, <c>-c,</c>, System.CommandLine's <c>-?,</c>), a placeholder (<c>VALUE</c>, <c>HOST</c>, or
    /// System.CommandLine's <c>&lt;HOST&gt;</c>) or <c>...</c>.
    /// </summary>
    [GeneratedRegex(@"^(?:--?[A-Za-z][a-z-]*,?|-\?,|[A-Z][A-Z_]*|<[A-Z][A-Z_]*>|\.\.\.)$")]
    private static partial Regex SynopsisToken();
}
