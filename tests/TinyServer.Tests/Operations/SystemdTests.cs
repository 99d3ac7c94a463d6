using System.Net.Sockets;
using System.Text;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Operations;

/// <summary>
/// The server under systemd (Type=notify), without systemd: as systemd does, the test binds a Unix datagram socket,
/// passes it in NOTIFY_SOCKET, and is the server's parent process under the name "systemd" (a launcher script of that
/// name), which is how .NET decides it runs as a systemd service.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
[Trait("Tier", "process")]
public class SystemdTests
{
    [Fact]
    public async Task The_server_notifies_READY_once_listening_and_STOPPING_on_SIGTERM_with_journald_log_lines()
    {
        string directory = Directory.CreateTempSubdirectory("tinyserver-systemd-").FullName;
        try
        {
            string socketPath = Path.Combine(directory, "notify");
            using var notify = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
            notify.Bind(new UnixDomainSocketEndPoint(socketPath));
            string launcher = Path.Combine(directory, "systemd");
            await File.WriteAllTextAsync(launcher, "#!/bin/sh\n\"$@\"\nexit $?\n");
            File.SetUnixFileMode(launcher, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

            await using ServerProcess server = await ServerProcess.StartAsync(
                ["--port", "0", "--bind", "127.0.0.1"],
                new Dictionary<string, string> { ["NOTIFY_SOCKET"] = socketPath },
                launcher);

            Assert.Equal("READY=1", await ReceiveAsync(notify));
            await using (RawConnection client = await RawConnection.OpenAsync(server.EndPoint))
            {
                await client.SendAsync("QUIT\n");
                Assert.Equal(["BYE"], await client.ReadLinesToEndAsync());
            }

            // journald's format: a <priority> prefix and no timestamp of our own (journald adds one).
            Assert.StartsWith("<6>TinyServer.Server[1] Listening on 127.0.0.1:", server.Output[0], StringComparison.Ordinal);

            int serverPid = int.Parse(File.ReadAllText($"/proc/{server.Id}/task/{server.Id}/children").Trim(), System.Globalization.CultureInfo.InvariantCulture);
            Assert.Equal(0, Kill(serverPid, 15));
            Assert.Equal("STOPPING=1", await ReceiveAsync(notify));
            Assert.Equal(0, await server.WaitForExitAsync());
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static async Task<string> ReceiveAsync(Socket socket)
    {
        byte[] buffer = new byte[512];
        int received = await socket.ReceiveAsync(buffer, SocketFlags.None).WaitAsync(Timeouts.Process);
        return Encoding.UTF8.GetString(buffer, 0, received);
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}
