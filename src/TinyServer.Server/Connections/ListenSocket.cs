using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;

namespace TinyServer.Server;

/// <summary>
/// Opens the socket a listener accepts from: TCP (dual-mode on <c>[::]</c>, rebindable during TIME_WAIT) or a Unix
/// domain socket (its file prepared before and given its mode before <c>listen()</c>), with the configured backlog.
/// An address in use is reported as Kestrel's <see cref="AddressInUseException"/>.
/// </summary>
internal static class ListenSocket
{
    /// <summary>A bound, listening socket on <paramref name="endpoint"/>; on failure nothing is left open or on disk.</summary>
    public static Socket Open(EndPoint endpoint, ServerOptions options)
    {
        string? unixPath = (endpoint as UnixDomainSocketEndPoint)?.ToString();
        if (unixPath is not null)
        {
            UnixSocketFile.PrepareForBind(unixPath);
        }

        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, unixPath is null ? ProtocolType.Tcp : ProtocolType.Unspecified);
        bool bound = false;
        try
        {
            if (endpoint is IPEndPoint { Address: var address } && address.Equals(IPAddress.IPv6Any))
            {
                socket.DualMode = true;
            }

            if (unixPath is null)
            {
                AllowRebindDuringTimeWait(socket);
            }

            socket.Bind(endpoint);
            bound = true;
            if (unixPath is not null)
            {
                // Before listen(): nobody can connect until the file has its permissions.
                UnixSocketFile.SetMode(unixPath, options.UnixSocketMode);
            }

            socket.Listen(options.ListenBacklog);
            return socket;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            socket.Dispose();
            throw new AddressInUseException(e.Message, e);
        }
        catch
        {
            socket.Dispose();
            if (bound && unixPath is not null)
            {
                UnixSocketFile.Remove(unixPath);
            }

            throw;
        }
    }

    /// <summary>
    /// Sets SO_REUSEADDR alone, so that a restart can bind while the last run's connections linger in TIME_WAIT; a
    /// second listener on the port is still refused. Not through <c>SocketOptionName.ReuseAddress</c>: on Unix .NET
    /// sets SO_REUSEPORT with it (Windows' SO_REUSEADDR means that), and then a second server binds the same port
    /// without a word and the kernel shares the new connections between the two. Windows rebinds during TIME_WAIT
    /// anyway, and its SO_REUSEADDR would let another socket take the port, so it is left alone there. (.NET's own
    /// Bind sets SO_REUSEADDR on Linux too; setting it here keeps the restart from depending on that.)
    /// </summary>
    private static void AllowRebindDuringTimeWait(Socket socket)
    {
        (int level, int name) = OperatingSystem.IsLinux() ? (1, 2) // SOL_SOCKET, SO_REUSEADDR
            : OperatingSystem.IsMacOS() || OperatingSystem.IsFreeBSD() ? (0xffff, 4)
            : (0, 0);
        if (level != 0)
        {
            socket.SetRawSocketOption(level, name, BitConverter.GetBytes(1));
        }
    }
}
