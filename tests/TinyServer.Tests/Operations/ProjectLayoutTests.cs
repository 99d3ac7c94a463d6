using System.Xml.Linq;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Operations;

/// <summary>
/// The project files: each project compiles only its own files (what two projects share lives in a project both
/// reference), and the container build (deploy/Dockerfile) copies every project the server is built from, since it
/// copies project by project.
/// </summary>
[Trait("Tier", "unit")]
public sealed class ProjectLayoutTests
{
    private static readonly string Root = BuiltPrograms.RepositoryRoot;

    [Fact]
    public void No_project_compiles_another_projects_files()
    {
        List<string> projects = [.. new[] { "src", "tests", "fuzz", "benchmarks" }
            .SelectMany(area => Directory.GetDirectories(Path.Combine(Root, area)))
            .SelectMany(directory => Directory.GetFiles(directory, "*.csproj"))];
        Assert.Contains(Path.Combine(Root, "src", "TinyServer.Server", "TinyServer.Server.csproj"), projects);

        List<string> reaching = [.. projects.SelectMany(project => Compiled(project)
            .Where(file => !file.StartsWith(Path.GetDirectoryName(project) + "/", StringComparison.Ordinal))
            .Select(file => $"{Relative(project)} compiles {Relative(file)}"))];
        Assert.True(reaching.Count == 0, string.Join("; ", reaching));
    }

    [Fact]
    public void No_source_file_under_src_is_longer_than_400_lines()
    {
        string[] files = [.. Directory.GetFiles(Path.Combine(Root, "src"), "*.cs", SearchOption.AllDirectories)
            .Where(file => !Relative(file).Split('/').Any(part => part is "obj" or "bin"))];
        Assert.Contains(files, file => file.EndsWith("LineConnectionHandler.cs", StringComparison.Ordinal));
        Assert.Empty(files.Where(file => File.ReadAllLines(file).Length > 400).Select(file => $"{Relative(file)}: {File.ReadAllLines(file).Length} lines"));
    }

    [Fact]
    public void The_image_copies_every_project_the_server_is_built_from()
    {
        string[] lines = File.ReadAllLines(Path.Combine(Root, "deploy", "Dockerfile"));
        int restore = Array.FindIndex(lines, l => l.StartsWith("RUN dotnet restore src/TinyServer.Server ", StringComparison.Ordinal));
        int publish = Array.FindIndex(lines, l => l.StartsWith("RUN dotnet publish src/TinyServer.Server ", StringComparison.Ordinal));
        Assert.True(restore > 0 && publish > restore, "the Dockerfile restores, then publishes, src/TinyServer.Server");

        // Where each COPY source (relative to the repository root) is copied: the line, or -1 when it is not.
        int Copied(string source) => Array.FindIndex(lines, l => l == $"COPY {source} {source[..(source.LastIndexOf('/') + 1)]}");

        var missing = new List<string>();
        foreach (string project in Closure(Path.Combine(Root, "src", "TinyServer.Server", "TinyServer.Server.csproj")))
        {
            int projectFile = Copied(Relative(project));
            if (projectFile < 0 || projectFile > restore)
            {
                missing.Add($"{Relative(project)} before the restore");
            }

            foreach (string directory in Compiled(project).Append(project).Select(file => Relative(Path.GetDirectoryName(file)!)).Distinct())
            {
                int sources = Copied(directory + "/");
                if (sources < 0 || sources > publish)
                {
                    missing.Add($"{directory}/ (read by {Relative(project)}) before the publish");
                }
            }
        }

        Assert.True(missing.Count == 0, "the Dockerfile does not copy " + string.Join("; ", missing));
    }

    [Fact]
    public void The_epoll_transport_references_only_the_interop_project_and_no_package()
    {
        string transport = Path.Combine(Root, "src", "TinyServer.Transport.Epoll", "TinyServer.Transport.Epoll.csproj");
        Assert.Equal(
            ["src/TinyServer.Interop/TinyServer.Interop.csproj", Relative(transport)],
            Closure(transport).Select(Relative).Order(StringComparer.Ordinal));
        Assert.Empty(Closure(transport).SelectMany(project => Items(project, "PackageReference")));
    }

    [Fact]
    public void In_the_server_only_its_epoll_transport_names_the_epoll_project()
    {
        // The listener, admission and options reach the transport through IConnectionTransport; one file configures it.
        string server = Path.Combine(Root, "src", "TinyServer.Server");
        List<string> naming = [.. Directory.GetFiles(server, "*.cs", SearchOption.AllDirectories)
            .Where(file => !Relative(file).Contains("/obj/", StringComparison.Ordinal) && !Relative(file).Contains("/bin/", StringComparison.Ordinal))
            .Where(file => File.ReadAllText(file).Contains("TinyServer.Transport.Epoll", StringComparison.Ordinal))
            .Select(Relative)
            .Order(StringComparer.Ordinal)];
        Assert.Equal(["src/TinyServer.Server/Connections/EpollTransport.cs"], naming);
    }

    /// <summary>The project and every project it references, directly or not.</summary>
    private static HashSet<string> Closure(string project)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var pending = new Stack<string>([project]);
        while (pending.TryPop(out string? next))
        {
            if (seen.Add(next))
            {
                foreach (string reference in Items(next, "ProjectReference"))
                {
                    pending.Push(reference);
                }
            }
        }

        return seen;
    }

    /// <summary>The files a project names in Compile items, as full paths (the SDK's own glob stays inside it).</summary>
    private static IEnumerable<string> Compiled(string project) => Items(project, "Compile");

    private static IEnumerable<string> Items(string project, string item) =>
        XDocument.Load(project).Descendants(item)
            .Select(e => (string?)e.Attribute("Include"))
            .OfType<string>()
            .Select(include => Path.GetFullPath(Path.Combine(Path.GetDirectoryName(project)!, include.Replace('\\', '/'))));

    private static string Relative(string path) => Path.GetRelativePath(Root, path).Replace('\\', '/');
}
