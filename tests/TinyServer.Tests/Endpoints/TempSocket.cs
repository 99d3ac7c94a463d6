namespace TinyServer.Tests.Endpoints;

/// <summary>Unix socket paths for tests.</summary>
public static class TempSocket
{
    /// <summary>A fresh path in the temporary directory, short enough for sun_path (107 bytes).</summary>
    public static string NewPath() => Path.Combine(Path.GetTempPath(), $"ts-{Guid.NewGuid():N}"[..15] + ".sock");
}
