using System.Collections;
using System.Globalization;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.AspNetCore.Connections;

namespace TinyServer.Server;

/// <summary>
/// A listening socket passed in by socket activation (systemd's convention): descriptor 3 and up, with the name
/// <c>LISTEN_FDNAMES</c> gives it. The name <see cref="SocketActivation.TlsName"/> makes it a TLS endpoint; any other
/// name (systemd's default is the socket unit's name) a plain one.
/// </summary>
public sealed record InheritedSocket(int Descriptor, string Name)
{
    public bool Tls => Name == SocketActivation.TlsName;
}

/// <summary>
/// Socket activation: when <c>LISTEN_PID</c> is this process and <c>LISTEN_FDS</c> is N, descriptors 3 to 3+N-1 are
/// listening sockets to serve (<c>LISTEN_FDNAMES</c>, colon-separated, names them), instead of binding <c>--port</c>,
/// <c>--bind</c> and <c>--unix</c>. The variables are parsed here rather than by Kestrel's <c>UseSystemd()</c>, which
/// ignores the names. The sockets are shared with systemd (or whoever passed them) and with the next instance of the
/// server, so stopping only closes this process's descriptor (<see cref="Open"/>): see README, "Socket activation".
/// </summary>
public static partial class SocketActivation
{
    /// <summary>The <c>LISTEN_FDNAMES</c> name of a socket to serve TLS on (<c>FileDescriptorName=tls</c> in a socket unit).</summary>
    public const string TlsName = "tls";

    /// <summary>The first passed descriptor (SD_LISTEN_FDS_START).</summary>
    public const int FirstDescriptor = 3;

    private const int SolSocket = 1;
    private const int SoType = 3;
    private const int SoAcceptConn = 30;
    private const int SoDomain = 39;
    private const int SockStream = 1;

    /// <summary>
    /// The sockets passed to process <paramref name="processId"/>: none when <c>LISTEN_PID</c> or <c>LISTEN_FDS</c> is
    /// missing or <c>LISTEN_PID</c> names another process (as sd_listen_fds, which lets a child ignore its parent's).
    /// </summary>
    /// <exception cref="OptionsException">A variable is malformed, or the names do not match the count.</exception>
    public static IReadOnlyList<InheritedSocket> Read(IDictionary environment, int processId)
    {
        if (environment["LISTEN_PID"] is not string pid || environment["LISTEN_FDS"] is not string fds)
        {
            return [];
        }

        if (!int.TryParse(pid, NumberStyles.None, CultureInfo.InvariantCulture, out int listenPid) || listenPid <= 0)
        {
            throw new OptionsException($"socket activation: LISTEN_PID '{pid}' is not a process id");
        }

        if (listenPid != processId)
        {
            return [];
        }

        if (!int.TryParse(fds, NumberStyles.None, CultureInfo.InvariantCulture, out int count) || count is < 1 or > int.MaxValue - FirstDescriptor)
        {
            throw new OptionsException($"socket activation: LISTEN_FDS '{fds}' is not a descriptor count (1 or more)");
        }

        string[] names = environment["LISTEN_FDNAMES"] is string text ? text.Split(':') : [.. Enumerable.Repeat("", count)];
        if (names.Length != count)
        {
            throw new OptionsException($"socket activation: LISTEN_FDNAMES '{environment["LISTEN_FDNAMES"]}' names {names.Length} sockets, LISTEN_FDS passes {count}");
        }

        return [.. names.Select((name, i) => new InheritedSocket(FirstDescriptor + i, name))];
    }

    /// <summary>True when descriptor <paramref name="descriptor"/> is a Unix domain socket (checked by <see cref="Open"/> too).</summary>
    public static bool IsUnix(int descriptor) => GetOption(descriptor, SoDomain, out int domain) == 0 && domain == (int)AddressFamily.Unix;

    /// <summary>
    /// The inherited listening socket on <paramref name="endpoint"/>, which this process does not own: disposing the
    /// <see cref="Socket"/> leaves the descriptor open (<see cref="Close"/> closes it). An owning Socket would, on
    /// Dispose with an accept pending, close abortively: set SO_LINGER {on, 0} on the listening socket itself, shared
    /// with the next instance, whose connections would then inherit it and end with a reset.
    /// </summary>
    /// <exception cref="SocketActivationException">The descriptor is not a listening stream socket.</exception>
    internal static Socket Open(FileHandleEndPoint endpoint)
    {
        int descriptor = checked((int)endpoint.FileHandle);
        string what = $"socket activation: descriptor {descriptor}";
        if (GetOption(descriptor, SoType, out int type) is int error and not 0)
        {
            throw new SocketActivationException($"{what} is not a socket ({Marshal.GetPInvokeErrorMessage(error)})");
        }

        if (type != SockStream)
        {
            throw new SocketActivationException($"{what} is not a stream socket (SO_TYPE {type}): pass ListenStream= sockets");
        }

        if (GetOption(descriptor, SoAcceptConn, out int listening) != 0 || listening == 0)
        {
            throw new SocketActivationException($"{what} is a socket that is not listening (Accept=no sockets only)");
        }

        return new Socket(new SafeSocketHandle(descriptor, ownsHandle: false));
    }

    /// <summary>
    /// Closes this process's descriptor of an inherited socket: close(2) only, never shutdown(2). The runtime's epoll
    /// registration of the socket lasts until every process has closed it (the runtime never deletes one): a later
    /// event for it is ignored, or, if the number has been reused meanwhile, is one spurious wake-up that the runtime
    /// answers by retrying the operation.
    /// </summary>
    internal static void Close(int descriptor) => CloseDescriptor(descriptor);

    /// <summary>getsockopt(SOL_SOCKET) of an int option: 0, or the errno.</summary>
    private static int GetOption(int descriptor, int option, out int value)
    {
        int length = sizeof(int);
        if (GetSockOpt(descriptor, SolSocket, option, out value, ref length) == 0)
        {
            return 0;
        }

        return Marshal.GetLastPInvokeError();
    }

    [LibraryImport("libc", EntryPoint = "getsockopt", SetLastError = true)]
    private static partial int GetSockOpt(int socket, int level, int name, out int value, ref int length);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int CloseDescriptor(int descriptor);
}

/// <summary>A descriptor passed by socket activation cannot be served: one line for the operator, exit 1.</summary>
public sealed class SocketActivationException(string message) : IOException(message);
