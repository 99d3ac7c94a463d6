using System.Text.RegularExpressions;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Cli;

/// <summary>
/// The layout of every program's <c>--help</c>: each entry is an option column of switches and placeholders, at least
/// two spaces, then its text, and the texts of one table start in one column. An option too long for the column once
/// ran into its text (<c>--max-connections-per-address VALUEconnections</c>). In a hand-written help every line
/// indented by two spaces is an entry of one table; in a help System.CommandLine generates (the client's), the
/// entries are the lines of its <c>Arguments:</c> and <c>Options:</c> sections, a table each, and a placeholder is
/// written <c>&lt;PATH&gt;</c>.
/// </summary>
[Trait("Tier", "process")]
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
        List<string[]> tables = Tables(result.OutputLines);
        Assert.True(tables.Sum(table => table.Length) >= 8, $"too few entries in the help:\n{result.StandardOutput}");
        foreach (string[] entries in tables)
        {
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
    }

    [Fact]
    public void A_generated_help_has_a_table_per_section()
    {
        string[] help = ["Description:", "  Does things.", "", "Usage:", "  prog [options]", "", "Arguments:", "  <HOST>  the host", "", "Options:", "  -?, -h, --help  help", "  --unix <PATH>   path", "", "Exit codes: 0 ok"];

        Assert.Equal([["  <HOST>  the host"], ["  -?, -h, --help  help", "  --unix <PATH>   path"]], Tables(help));
    }

    /// <summary>The help's tables of entries: see the class summary.</summary>
    private static List<string[]> Tables(IReadOnlyList<string> lines)
    {
        static bool IsEntry(string line) => line.StartsWith("  ", StringComparison.Ordinal) && line.Length > 2 && line[2] != ' ';
        if (!lines.Contains("Options:"))
        {
            return [[.. lines.Where(IsEntry)]];
        }

        var tables = new List<string[]>();
        for (int i = 0; i < lines.Count; i++)
        {
            if (lines[i] is "Arguments:" or "Options:")
            {
                tables.Add([.. lines.Skip(i + 1).TakeWhile(line => line.StartsWith("  ", StringComparison.Ordinal)).Where(IsEntry)]);
            }
        }

        return tables;
    }

    [GeneratedRegex(@"^  (?<synopsis>\S+(?: \S+)*)  +(?<text>\S.*)$")]
    private static partial Regex Entry();

    /// <summary>
    /// A switch (<c>--port</c>, <c>-c,</c>, <c>-?,</c>), a placeholder (<c>VALUE</c>, <c>HOST</c>, <c>&lt;PATH&gt;</c>)
    /// or <c>...</c>.
    /// </summary>
    [GeneratedRegex(@"^(?:--?[A-Za-z][a-z-]*,?|-\?,|[A-Z][A-Z_]*|<[A-Z][A-Z_]*>|\.\.\.)$")]
    private static partial Regex SynopsisToken();
}
