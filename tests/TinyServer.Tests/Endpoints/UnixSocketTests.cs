using System.Runtime.InteropServices;
using TinyServer.Server;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Endpoints;

/// <summary>The Unix domain socket endpoint of the in-process server: protocol, permissions, stale and live files, cleanup.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
[Trait("Tier", "unit")]
public sealed class UnixSocketTests
{
    [Theory]
    [InlineData(TransportKind.Epoll)]
    [InlineData(TransportKind.Sockets)]
    public async Task The_protocol_over_a_unix_socket_is_the_same_as_over_tcp(TransportKind transport)
    {
        string path = TempSocket.NewPath();
        await using TestServer server = await TestServer.StartAsync(new ServerOptions { UnixSocketPath = path, Transport = transport });
        await using RawConnection client = await RawConnection.ConnectUnixAsync(path);

        Assert.Equal("WELCOME, I'm TinyServer not pressure", await client.ReadLineAsync());
        await client.SendByteByByteAsync("ECHO unix\r\nHELP\nQUIT\n"u8.ToArray());
        Assert.Equal(["ECHO unix", "HELP TIME | ECHO <text> | HELP | QUIT", "BYE"], await client.ReadLinesToEndAsync());
        await using (RawConnection plain = await RawConnection.OpenAsync(server.EndPoint))
        {
            await plain.SendAsync("QUIT\n"); // TCP as before.
            Assert.Equal(["BYE"], await plain.ReadLinesToEndAsync());
        }

        await server.WaitForAllClosedAsync(2);
        Assert.Empty(server.Warnings);
    }

    [Theory]
    [InlineData(UnixFileMode.UserRead | UnixFileMode.UserWrite)]
    [InlineData(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite)]
    [InlineData(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite)]
    public async Task The_socket_file_gets_the_mode_asked_for_and_is_removed_at_shutdown(UnixFileMode mode)
    {
        string path = TempSocket.NewPath();
        TestServer server = await TestServer.StartAsync(new ServerOptions { UnixSocketPath = path, UnixSocketMode = mode });
        try
        {
            Assert.Equal(mode, File.GetUnixFileMode(path));
        }
        finally
        {
            await server.DisposeAsync();
        }

        Assert.False(File.Exists(path));
    }

    [Fact]
    public async Task A_stale_socket_file_is_replaced()
    {
        string path = TempSocket.NewPath();
        // What a killed server leaves: a socket inode nobody listens on. (A .NET socket would remove it on Dispose.)
        Assert.Equal(0, MakeNode(path, 0xC000 | Convert.ToUInt32("600", 8), 0));
        Assert.True(File.Exists(path));
        await using TestServer server = await TestServer.StartAsync(new ServerOptions { UnixSocketPath = path });
        await using RawConnection client = await RawConnection.ConnectUnixAsync(path);
        Assert.Equal("WELCOME, I'm TinyServer not pressure", await client.ReadLineAsync());
    }

    [Fact]
    public async Task A_socket_another_server_listens_on_is_refused_and_left_alone()
    {
        string path = TempSocket.NewPath();
        await using TestServer first = await TestServer.StartAsync(new ServerOptions { UnixSocketPath = path });

        IOException error = await Assert.ThrowsAsync<IOException>(() => TestServer.StartAsync(new ServerOptions { UnixSocketPath = path }));
        Assert.Contains($"another process is listening on {path}", error.Message, StringComparison.Ordinal);
        await using RawConnection client = await RawConnection.ConnectUnixAsync(path); // The first server still has it.
        Assert.Equal("WELCOME, I'm TinyServer not pressure", await client.ReadLineAsync());
    }

    [Fact]
    public async Task A_regular_file_at_the_path_is_refused_and_kept()
    {
        string path = TempSocket.NewPath();
        await File.WriteAllTextAsync(path, "precious");
        try
        {
            IOException error = await Assert.ThrowsAsync<IOException>(() => TestServer.StartAsync(new ServerOptions { UnixSocketPath = path }));
            Assert.Contains("exists and is not a socket", error.Message, StringComparison.Ordinal);
            Assert.Equal("precious", await File.ReadAllTextAsync(path));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public async Task Unix_connections_count_against_the_connection_limit_like_the_others()
    {
        string path = TempSocket.NewPath();
        await using TestServer server = await TestServer.StartAsync(new ServerOptions { UnixSocketPath = path, MaxConnections = 2 });
        await using RawConnection first = await RawConnection.ConnectUnixAsync(path);
        await using RawConnection second = await RawConnection.ConnectUnixAsync(path);
        Assert.Equal("WELCOME, I'm TinyServer not pressure", await first.ReadLineAsync());
        Assert.Equal("WELCOME, I'm TinyServer not pressure", await second.ReadLineAsync());

        await using RawConnection third = await RawConnection.ConnectUnixAsync(path);
        Assert.Equal(["ERROR TOO_MANY_CONNECTIONS"], await third.ReadLinesToEndAsync());
        await first.SendAsync("QUIT\n");
        Assert.Equal(["BYE"], await first.ReadLinesToEndAsync());
        await using RawConnection fourth = await RawConnection.OpenAsync(server.EndPoint);
        Assert.Empty(server.Warnings);
    }

    [Theory]
    [InlineData("0600", UnixFileMode.UserRead | UnixFileMode.UserWrite)]
    [InlineData("660", UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite)]
    [InlineData("0000", UnixFileMode.None)]
    [InlineData("0777", (UnixFileMode)0x1FF)]
    public void The_mode_is_read_as_octal(string text, UnixFileMode mode) =>
        Assert.Equal(mode, ServerOptionsLoader.Load(["--unix-mode", text], new Dictionary<string, string>(), settingsFile: null)!.UnixSocketMode);

    [Theory]
    [InlineData("--unix-mode", "1000")]
    [InlineData("--unix-mode", "0778")]
    [InlineData("--unix-mode", "66")]
    [InlineData("--unix-mode", "rw-rw----")]
    [InlineData("--unix", "")]
    [InlineData("--unix", "/nonexistent-directory-for-tinyserver/x.sock")]
    public void Bad_unix_options_are_refused_naming_the_option(string option, string value)
    {
        OptionsException error = Assert.Throws<OptionsException>(() => ServerOptionsLoader.Load([option, value], new Dictionary<string, string>(), settingsFile: null));
        Assert.StartsWith(option + " ", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_path_longer_than_sun_path_is_refused()
    {
        string path = "/tmp/" + new string('s', ServerOptions.MaxUnixPathBytes - 4);
        OptionsException error = Assert.Throws<OptionsException>(() => ServerOptionsLoader.Load(["--unix", path], new Dictionary<string, string>(), settingsFile: null));
        Assert.Contains("longer than the 107 bytes", error.Message, StringComparison.Ordinal);
        Assert.Equal(path[..^1], ServerOptionsLoader.Load(["--unix", path[..^1]], new Dictionary<string, string>(), settingsFile: null)!.UnixSocketPath);
    }

    [Fact]
    public void The_default_mode_is_0660()
    {
        ServerOptions options = ServerOptionsLoader.Load(["--unix", "/tmp/x.sock"], new Dictionary<string, string>(), settingsFile: null)!;
        Assert.Equal(Convert.ToInt32("660", 8), (int)options.UnixSocketMode);
        Assert.Null(new ServerOptions().UnixSocketPath);
    }

    [DllImport("libc", EntryPoint = "mknod", SetLastError = true)]
    private static extern int MakeNode(string path, uint mode, ulong device);
}
