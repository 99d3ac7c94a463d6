using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace TinyServer.Interop;

/// <summary>
/// recv and send with MSG_DONTWAIT: never blocking, whatever mode the socket is in. <see cref="Socket.Blocking"/>
/// = false would do the same through <see cref="Socket.Receive(Span{byte}, SocketFlags, out SocketError)"/>, but it
/// gives every socket the runtime's asynchronous context (about 200 bytes) that the epoll transport never uses.
/// The caller keeps the socket open for the duration of the call. Also the send queue's length, which the idle
/// timeout reads (on either transport) to see a peer that reads its replies.
/// </summary>
internal static unsafe partial class NonBlocking
{
    private const int DontWait = 0x40; // MSG_DONTWAIT
    private const int NoSignal = 0x4000; // MSG_NOSIGNAL: a closed peer is an error, not SIGPIPE.
    private const int EINTR = 4;
    private const int EBADF = 9;
    private const int EAGAIN = 11;
    private const int EPIPE = 32;
    private const int ECONNRESET = 104;
    private const int ETIMEDOUT = 110;
    private const nuint SIOCOUTQ = 0x5411; // = TIOCOUTQ

    public static int Receive(Socket socket, Span<byte> buffer, out SocketError error)
    {
        fixed (byte* p = buffer)
        {
            nint result;
            do
            {
                result = recv(Descriptor(socket), p, (nuint)buffer.Length, DontWait);
            }
            while (Interrupted(result));

            return Complete(result, out error);
        }
    }

    public static int Send(Socket socket, ReadOnlySpan<byte> buffer, out SocketError error)
    {
        fixed (byte* p = buffer)
        {
            nint result;
            do
            {
                result = send(Descriptor(socket), p, (nuint)buffer.Length, DontWait | NoSignal);
            }
            while (Interrupted(result));

            return Complete(result, out error);
        }
    }

    /// <summary>
    /// Bytes in the socket's send queue that the peer has not taken yet (TCP: not acknowledged; Unix: not read), by
    /// ioctl SIOCOUTQ; -1 when the socket is closed or the call fails. Safe against a concurrent close: the descriptor
    /// cannot be closed, and its number reused, during the call.
    /// </summary>
    public static int SendQueue(Socket socket)
    {
        SafeSocketHandle handle = socket.SafeHandle;
        if (handle.IsClosed)
        {
            return -1;
        }

        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            int queued;
            return ioctl((int)handle.DangerousGetHandle(), SIOCOUTQ, &queued) == 0 ? queued : -1;
        }
        catch (ObjectDisposedException)
        {
            return -1; // Closed since the check above.
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }

    private static bool Interrupted(nint result) => result < 0 && Marshal.GetLastPInvokeError() == EINTR;

    private static int Descriptor(Socket socket) => (int)socket.SafeHandle.DangerousGetHandle();

    private static int Complete(nint result, out SocketError error)
    {
        if (result >= 0)
        {
            error = SocketError.Success;
            return (int)result;
        }

        error = Marshal.GetLastPInvokeError() switch
        {
            EAGAIN => SocketError.WouldBlock,
            ECONNRESET => SocketError.ConnectionReset,
            EPIPE => SocketError.Shutdown,
            ETIMEDOUT => SocketError.TimedOut,
            EBADF => SocketError.OperationAborted,
            _ => SocketError.SocketError,
        };
        return 0;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint recv(int fd, byte* buffer, nuint length, int flags);

    // Variadic in C; the x64 and arm64 Linux calling conventions pass the one pointer argument as a fixed one.
    [LibraryImport("libc")]
    private static partial int ioctl(int fd, nuint request, int* value);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint send(int fd, byte* buffer, nuint length, int flags);
}
