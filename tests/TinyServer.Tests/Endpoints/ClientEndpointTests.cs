using System.Globalization;
using System.Security.Authentication;
using TinyServer.ClientLibrary;
using TinyServer.Server;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Endpoints;

/// <summary>The client library and the command-line client over TLS (--tls, --insecure) and a Unix socket (--unix).</summary>
[Trait("Tier", "process")]
public sealed class ClientEndpointTests
{
    private const string Banner = "<- WELCOME, I'm TinyServer not pressure";
    private const string InsecureWarning = "tinyserver-client: warning: --insecure: the server's certificate is not checked; anyone in the path can read and change this session\n";

    private static Task<TestServer> StartAsync(string? unixPath = null) => TestServer.StartAsync(new ServerOptions
    {
        TlsPort = 0,
        TlsCertificate = TestCertificate.Instance.Certificate,
        UnixSocketPath = unixPath,
    });

    [Theory]
    [InlineData(SslProtocols.Tls12)]
    [InlineData(SslProtocols.Tls13)]
    public async Task The_library_speaks_over_tls(SslProtocols protocol)
    {
        await using TestServer server = await StartAsync();
        using var deadline = new CancellationTokenSource(Timeouts.Read);
        await using TinyServerClient client = await TinyServerClient.ConnectAsync(
            "localhost", server.TlsEndPoint!.Port, new TlsClientOptions { AcceptAnyCertificate = true, Protocols = protocol }, deadline.Token);

        Assert.Equal(protocol, client.TlsProtocol);
        Assert.Equal("WELCOME, I'm TinyServer not pressure", client.Banner);
        Assert.Equal(["ECHO one", "ECHO two"], await client.PipelineAsync(["ECHO one", "ECHO two"], deadline.Token));
        Assert.Equal("BYE", await client.RequestAsync("QUIT", deadline.Token));
        Assert.Null(await client.ReadReplyAsync(deadline.Token));
    }

    [Fact]
    public async Task The_library_refuses_an_untrusted_certificate_unless_told_to_accept_any()
    {
        await using TestServer server = await StartAsync();
        using var deadline = new CancellationTokenSource(Timeouts.Read);

        TlsHandshakeException error = await Assert.ThrowsAsync<TlsHandshakeException>(() =>
            TinyServerClient.ConnectAsync("localhost", server.TlsEndPoint!.Port, new TlsClientOptions(), deadline.Token));
        Assert.Contains("not trusted for 'localhost'", error.Message, StringComparison.Ordinal);
        Assert.Empty(server.Warnings);
    }

    [Fact]
    public async Task The_library_speaks_over_a_unix_socket()
    {
        string path = TempSocket.NewPath();
        await using TestServer server = await StartAsync(path);
        using var deadline = new CancellationTokenSource(Timeouts.Read);
        await using TinyServerClient client = await TinyServerClient.ConnectUnixAsync(path, deadline.Token);

        Assert.Equal(SslProtocols.None, client.TlsProtocol);
        Assert.Equal("ECHO local", await client.RequestAsync("ECHO local", deadline.Token));
    }

    [Fact]
    public async Task Cli_with_tls_and_insecure_runs_the_commands_and_warns()
    {
        await using TestServer server = await StartAsync();
        string port = server.TlsEndPoint!.Port.ToString(CultureInfo.InvariantCulture);

        ProcessResult result = await RunClientAsync("--tls", "--insecure", "127.0.0.1", port, "ECHO secret", "HELP");

        Assert.Equal(0, result.ExitCode);
        Assert.Equal(
            Lines($"CONNECT to 127.0.0.1:{port} (TLS)", Banner, "-> ECHO secret", "<- ECHO secret", "-> HELP", "<- HELP TIME | ECHO <text> | HELP | QUIT", "-> QUIT", "<- BYE"),
            result.StandardOutput);
        Assert.Equal(InsecureWarning, result.StandardError);
    }

    [Fact]
    public async Task Cli_with_tls_rejects_a_self_signed_certificate_with_exit_code_3()
    {
        await using TestServer server = await StartAsync();
        string port = server.TlsEndPoint!.Port.ToString(CultureInfo.InvariantCulture);

        ProcessResult result = await RunClientAsync("--tls", "localhost", port, "TIME");

        Assert.Equal(3, result.ExitCode);
        Assert.Equal(Lines($"CONNECT to localhost:{port} (TLS)"), result.StandardOutput);
        string line = Assert.Single(result.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith($"tinyserver-client: cannot connect to localhost:{port} (TLS): TLS handshake failed: the server's certificate is not trusted for 'localhost'", line, StringComparison.Ordinal);
        Assert.EndsWith("(--insecure accepts any certificate, for testing)", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cli_with_tls_against_a_plain_port_fails_the_handshake_with_exit_code_3()
    {
        await using TestServer server = await StartAsync();

        ProcessResult result = await RunClientAsync("--tls", "--insecure", "127.0.0.1", server.Port.ToString(CultureInfo.InvariantCulture), "TIME");

        Assert.Equal(3, result.ExitCode);
        Assert.Contains("TLS handshake failed", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cli_without_tls_at_the_tls_port_times_out_and_says_to_try_tls()
    {
        // The TLS port waits for a handshake, the client for a banner: nothing comes until the client's timeout.
        await using TestServer server = await StartAsync();
        string port = server.TlsEndPoint!.Port.ToString(CultureInfo.InvariantCulture);

        ProcessResult result = await RunClientAsync("--timeout", "1", "127.0.0.1", port, "TIME");

        Assert.Equal(4, result.ExitCode);
        Assert.Equal(Lines($"CONNECT to 127.0.0.1:{port}"), result.StandardOutput);
        Assert.Equal(
            $"tinyserver-client: timed out after 1 s waiting for 127.0.0.1:{port}: connected, but no banner came (is this a TLS port? try --tls)\n",
            result.StandardError);
    }

    [Fact]
    public async Task Cli_with_unix_runs_the_commands_and_the_demo()
    {
        string path = TempSocket.NewPath();
        await using TestServer server = await StartAsync(path);

        ProcessResult commands = await RunClientAsync("--unix", path, "ECHO local");
        Assert.Equal(0, commands.ExitCode);
        Assert.Equal(Lines($"CONNECT to unix:{path}", Banner, "-> ECHO local", "<- ECHO local", "-> QUIT", "<- BYE"), commands.StandardOutput);
        Assert.Equal("", commands.StandardError);

        ProcessResult demo = await RunClientAsync("--demo", "--unix", path);
        Assert.Equal(0, demo.ExitCode);
        Assert.Equal(2, demo.OutputLines.Count(line => line == $"CONNECT to unix:{path}"));
    }

    [Fact]
    public async Task Cli_with_a_unix_path_nobody_listens_on_exits_3()
    {
        string path = TempSocket.NewPath();

        ProcessResult result = await RunClientAsync("--unix", path, "TIME");

        Assert.Equal(3, result.ExitCode);
        Assert.StartsWith($"tinyserver-client: cannot connect to unix:{path}: ", result.StandardError, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--insecure|127.0.0.1|40000", "--insecure goes with --tls")]
    [InlineData("--tls|--unix|/tmp/x.sock", "--unix and --tls do not go together")]
    [InlineData("--unix", "--unix needs the path")]
    public async Task Cli_bad_endpoint_usage_exits_2(string arguments, string expected)
    {
        ProcessResult result = await RunClientAsync(arguments.Split('|'));

        Assert.Equal(2, result.ExitCode);
        Assert.Contains(expected, result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cli_help_names_the_endpoint_options()
    {
        ProcessResult result = await RunClientAsync("--help");

        Assert.Equal(0, result.ExitCode);
        foreach (string option in new[] { "--tls ", "--insecure", "--unix <PATH>", "3 cannot connect (including a failed TLS handshake" })
        {
            Assert.Contains(option, result.StandardOutput, StringComparison.Ordinal);
        }
    }

    private static Task<ProcessResult> RunClientAsync(params string[] arguments) =>
        ProcessRunner.RunAsync(BuiltPrograms.Dotnet, [BuiltPrograms.ClientDll, .. arguments], standardInput: "");

    private static string Lines(params string[] lines) => string.Join('\n', lines) + "\n";
}
