using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace TinyServer.Server;

/// <summary>
/// The file of a Unix domain socket listener: a stale one (left by a server that crashed) is removed before binding,
/// a live one (another server answers on it) is refused, anything that is not a socket is never touched.
/// </summary>
internal static partial class UnixSocketFile
{
    private const int AtFdCwd = -100;
    private const int AtSymlinkNoFollow = 0x100;
    private const uint StatxType = 0x1;
    private const int FileTypeMask = 0xF000; // S_IFMT
    private const int SocketType = 0xC000; // S_IFSOCK

    /// <summary>Makes <paramref name="path"/> free to bind: nothing there, or a socket nobody listens on (removed).</summary>
    /// <exception cref="IOException">Something else is there, or a server is listening on it.</exception>
    public static void PrepareForBind(string path)
    {
        if (FileType(path) is not int type)
        {
            return;
        }

        if (type != SocketType)
        {
            throw new IOException($"{path} exists and is not a socket: remove it or choose another --unix path");
        }

        // Non-blocking: a listener with a full backlog answers EAGAIN at once instead of making us wait.
        using var probe = new Socket(AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, ProtocolType.Unspecified) { Blocking = false };
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
        {
            File.Delete(path); // Stale: its server is gone.
            return;
        }
        catch (SocketException e) when (e.SocketErrorCode is not (SocketError.WouldBlock or SocketError.InProgress or SocketError.TryAgain))
        {
            throw new IOException($"cannot check whether {path} is in use: {e.Message}", e);
        }

        throw new IOException($"another process is listening on {path} (a second server needs its own --unix path)");
    }

    /// <summary>Sets the socket file's permissions (who may connect: connecting needs write permission).</summary>
    public static void SetMode(string path, UnixFileMode mode)
    {
        if (OperatingSystem.IsWindows())
        {
            throw new PlatformNotSupportedException("Unix socket permissions need Linux");
        }

        File.SetUnixFileMode(path, mode);
    }

    /// <summary>Removes the socket file at shutdown, if it is still a socket (never a file someone put there since).</summary>
    public static void Remove(string path)
    {
        try
        {
            if (FileType(path) == SocketType)
            {
                File.Delete(path);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort: a stale file is removed by the next start anyway.
        }
    }

    /// <summary>The S_IFMT bits of the file at <paramref name="path"/> (not following a symbolic link), or null when there is none.</summary>
    private static int? FileType(string path)
    {
        // statx's layout is the same on every architecture, unlike struct stat.
        if (Statx(AtFdCwd, path, AtSymlinkNoFollow, StatxType, out StatxBuffer buffer) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            return errno == 2 /* ENOENT */ ? null : throw new IOException($"cannot inspect {path}: {Marshal.GetPInvokeErrorMessage(errno)}");
        }

        return buffer.Mode & FileTypeMask;
    }

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Statx(int directory, string path, int flags, uint mask, out StatxBuffer buffer);

    [StructLayout(LayoutKind.Explicit, Size = 256)]
    private struct StatxBuffer
    {
        [FieldOffset(28)]
        public ushort Mode;
    }
}
