namespace TinyServer.Tests.Infrastructure;

/// <summary>Where the build put the client, server and load generator programs (same configuration as the tests).</summary>
public static class BuiltPrograms
{
    private static readonly string TestDirectory = AppContext.BaseDirectory;

    // tests/TinyServer.Tests/bin/<Configuration>/net10.0/ -> the repository root and the configuration.
    private static readonly DirectoryInfo OutputDirectory = new(TestDirectory.TrimEnd(Path.DirectorySeparatorChar));

    public static string Configuration => OutputDirectory.Parent!.Name;

    public static string RepositoryRoot => OutputDirectory.Parent!.Parent!.Parent!.Parent!.Parent!.FullName;

    public static string ClientDll => Program("TinyServer.Client");

    public static string ServerDll => Program("TinyServer.Server");

    public static string LoadGenDll => Program("TinyServer.LoadGen");

    public static string Dotnet => Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";

    private static string Program(string name)
    {
        string path = Path.Combine(RepositoryRoot, "src", name, "bin", Configuration, OutputDirectory.Name, name + ".dll");
        Assert.True(File.Exists(path), $"{path} is missing: build the solution first");
        return path;
    }
}
