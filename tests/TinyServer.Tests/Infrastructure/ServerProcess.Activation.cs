using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace TinyServer.Tests.Infrastructure;

/// <summary>
/// Socket activation for tests: the test plays systemd. <see cref="StartActivatedAsync"/> starts a server that
/// inherits listening sockets the test holds (LISTEN_FDS, descriptors from 3), so one socket can serve instance A,
/// then B. .NET's Process.Start passes no descriptor but 0-2, so a python3 launcher takes them: the test hands them
/// over a Unix socket (SCM_RIGHTS, <see cref="Hand"/>), and the launcher moves them to 3, 4, ..., sets LISTEN_FDS,
/// LISTEN_PID (its own pid, kept by exec) and LISTEN_FDNAMES, and execs the server. No descriptor is made
/// inheritable in the test process, where any other test's child could take it.
/// </summary>
public sealed partial class ServerProcess
{
    /// <summary>The launcher: receives the descriptors, moves them to 3.. (inheritable), sets the variables, execs argv[4:].</summary>
    private const string Launcher = """
        import fcntl, os, socket, sys
        hand, count, names = sys.argv[1], int(sys.argv[2]), sys.argv[3]
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(hand)
            _, fds, _, _ = socket.recv_fds(s, 1, count)
        if len(fds) != count:
            sys.exit(f"launcher: {len(fds)} descriptors received, {count} expected")
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100) for fd in fds]
        for fd in fds:
            os.close(fd)
        for i, fd in enumerate(high):
            os.dup2(fd, 3 + i, inheritable=True)
            os.close(fd)
        os.environ.update(LISTEN_FDS=str(count), LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES=names)
        os.execvp(sys.argv[4], sys.argv[4:])
        """;

    /// <summary>
    /// Starts a server that serves <paramref name="sockets"/> (listening sockets the caller keeps open and may pass
    /// again to the next instance), named by <paramref name="names"/> in LISTEN_FDNAMES (e.g. "tinyserver", "tls").
    /// Returns once the server has logged that it is ready. <see cref="EndPoint"/> is the first socket's address.
    /// </summary>
    public static async Task<ServerProcess> StartActivatedAsync(
        IReadOnlyList<Socket> sockets, IReadOnlyList<string> names, IEnumerable<string> arguments, IDictionary<string, string>? environment = null)
    {
        ServerProcess server = await LaunchActivatedAsync([.. sockets.Select(s => s.SafeHandle)], names, arguments, environment);
        try
        {
            await server.WaitForLineAsync("TinyServer ready");
            if (sockets[0].LocalEndPoint is IPEndPoint endPoint)
            {
                server.EndPoint = endPoint;
            }

            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Starts the server with <paramref name="descriptors"/> (any open descriptors: sockets, or files to see it
    /// refuse them) as descriptors 3, 4, ... and LISTEN_FDNAMES <paramref name="names"/>; does not wait for it.
    /// </summary>
    public static async Task<ServerProcess> LaunchActivatedAsync(
        IReadOnlyList<SafeHandle> descriptors, IReadOnlyList<string> names, IEnumerable<string> arguments, IDictionary<string, string>? environment = null)
    {
        Assert.Equal(descriptors.Count, names.Count);
        string directory = Directory.CreateTempSubdirectory("tinyserver-hand-").FullName;
        try
        {
            string handPath = Path.Combine(directory, "hand");
            using var hand = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            hand.Bind(new UnixDomainSocketEndPoint(handPath));
            hand.Listen(1);
            Process process = ProcessRunner.Start(
                ProcessRunner.RequireTool("python3"),
                ["-c", Launcher, handPath, descriptors.Count.ToString(System.Globalization.CultureInfo.InvariantCulture), string.Join(':', names),
                 BuiltPrograms.Dotnet, BuiltPrograms.ServerDll, .. arguments],
                environment);
            var server = new ServerProcess(process);
            try
            {
                using Socket taker = await hand.AcceptAsync().WaitAsync(Timeouts.Process);
                Hand(taker, [.. descriptors.Select(d => (int)d.DangerousGetHandle())]);
                return server;
            }
            catch
            {
                await server.DisposeAsync();
                throw;
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>Starts the server under <c>systemd-socket-activate</c> (which binds, and starts the server at the first connection).</summary>
    /// <param name="listen">Its <c>-l</c> addresses: <c>127.0.0.1:PORT</c> or a Unix socket path.</param>
    /// <param name="names">Its <c>--fdname</c> (colon-separated), or null to pass no names.</param>
    public static ServerProcess StartUnderSocketActivate(IEnumerable<string> listen, string? names, IEnumerable<string> arguments)
    {
        Process process = ProcessRunner.Start(
            ProcessRunner.RequireTool("systemd-socket-activate"),
            [.. listen.SelectMany(address => new[] { "-l", address }), .. names is null ? [] : new[] { $"--fdname={names}" },
             BuiltPrograms.Dotnet, BuiltPrograms.ServerDll, .. arguments]);
        return new ServerProcess(process);
    }

    /// <summary>Sends <paramref name="descriptors"/> over the connected Unix socket <paramref name="socket"/> as one SCM_RIGHTS message.</summary>
    private static void Hand(Socket socket, int[] descriptors)
    {
        const int SolSocket = 1;
        const int ScmRights = 1;
        int headerSize = Marshal.SizeOf<ControlHeader>();
        int dataLength = descriptors.Length * sizeof(int);
        int controlLength = headerSize + ((dataLength + IntPtr.Size - 1) & ~(IntPtr.Size - 1)); // CMSG_SPACE
        IntPtr control = Marshal.AllocHGlobal(controlLength);
        IntPtr payload = Marshal.AllocHGlobal(1);
        IntPtr io = Marshal.AllocHGlobal(Marshal.SizeOf<IoVector>());
        try
        {
            Marshal.Copy(new byte[controlLength], 0, control, controlLength); // the padding too
            Marshal.StructureToPtr(new ControlHeader { Length = (nuint)(headerSize + dataLength), Level = SolSocket, Type = ScmRights }, control, false);
            Marshal.Copy(descriptors, 0, control + headerSize, descriptors.Length);
            Marshal.WriteByte(payload, (byte)'x');
            Marshal.StructureToPtr(new IoVector { Base = payload, Length = 1 }, io, false);
            var message = new MessageHeader { Io = io, IoLength = 1, Control = control, ControlLength = (nuint)controlLength };
            Assert.True(SendMessage((int)socket.Handle, in message, 0) == 1, $"sendmsg: {Marshal.GetLastPInvokeErrorMessage()}");
        }
        finally
        {
            Marshal.FreeHGlobal(control);
            Marshal.FreeHGlobal(payload);
            Marshal.FreeHGlobal(io);
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MessageHeader
    {
        public IntPtr Name;
        public int NameLength;
        public IntPtr Io;
        public nuint IoLength;
        public IntPtr Control;
        public nuint ControlLength;
        public int Flags;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct IoVector
    {
        public IntPtr Base;
        public nuint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct ControlHeader
    {
        public nuint Length;
        public int Level;
        public int Type;
    }

    [DllImport("libc", EntryPoint = "sendmsg", SetLastError = true)]
    private static extern nint SendMessage(int socket, in MessageHeader message, int flags);
}
