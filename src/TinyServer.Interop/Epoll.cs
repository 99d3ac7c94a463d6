using System.Buffers.Binary;
using System.ComponentModel;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace TinyServer.Interop;

/// <summary>
/// Linux epoll, which <see cref="Socket"/> does not offer, for sockets that are read and written without blocking.
/// Two users, each with its own instances: the server's epoll transport (EpollLoops; it reads and writes with
/// MSG_DONTWAIT, whatever mode its sockets are in) and the load generator (RunState; its sockets are in non-blocking
/// mode). Each registration carries a 64-bit token that comes back with its events.
/// </summary>
/// <remarks>
/// <para>
/// The caller chooses the triggering with the events it passes. Without EPOLLET a registration is level-triggered:
/// the load generator's, which asks for <see cref="Writable"/> only while a connect or a send is unfinished
/// (<see cref="Change"/>). With <see cref="EdgeTriggered"/> it is edge-triggered: the server's, registered once for
/// readable, writable and <see cref="PeerClosed"/> and never changed, so a readiness is reported when it arises, not again while it
/// lasts.
/// </para>
/// <para>
/// The runtime's own socket engine is epoll too, but it tries every receive once before waiting, which costs one
/// extra system call per request; on a small machine system calls are what runs short.
/// </para>
/// </remarks>
internal sealed unsafe partial class Epoll : IDisposable
{
    public const uint Readable = 0x001;
    public const uint Writable = 0x004;
    public const uint Error = 0x008;
    public const uint HangUp = 0x010;
    public const uint PeerClosed = 0x2000; // EPOLLRDHUP: the peer shut down its side.
    public const uint EdgeTriggered = 1u << 31; // EPOLLET

    private const int Add = 1;
    private const int Modify = 3;
    private const int MaxEvents = 512;
    private const int Interrupted = 4; // EINTR

    // struct epoll_event { uint32_t events; uint64_t data; } is packed on x86-64 (12 bytes), aligned elsewhere (16).
    private static readonly int EventSize = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 12 : 16;

    private readonly int _fd;
    private readonly byte* _events;

    public Epoll()
    {
        _fd = epoll_create1(0x80000); // EPOLL_CLOEXEC
        if (_fd < 0)
        {
            throw new Win32Exception(Marshal.GetLastPInvokeError(), "epoll_create1");
        }

        _events = (byte*)NativeMemory.AllocZeroed((nuint)(MaxEvents * EventSize));
    }

    public void Register(Socket socket, ulong token, uint events) => Control(Add, socket, token, events);

    public void Change(Socket socket, ulong token, uint events) => Control(Modify, socket, token, events);

    /// <summary>
    /// Waits up to <paramref name="timeoutNanoseconds"/> for events (epoll_pwait2: a timeout finer than a millisecond,
    /// which pacing at --rate needs); read them with <see cref="Token"/> and <see cref="Events"/>.
    /// </summary>
    public int Wait(long timeoutNanoseconds)
    {
        long* timeout = stackalloc long[2];
        timeout[0] = timeoutNanoseconds / 1_000_000_000;
        timeout[1] = timeoutNanoseconds % 1_000_000_000;
        while (true)
        {
            int count = epoll_pwait2(_fd, _events, MaxEvents, timeout, null);
            if (count >= 0)
            {
                return count;
            }

            int error = Marshal.GetLastPInvokeError();
            if (error != Interrupted)
            {
                throw new Win32Exception(error, "epoll_pwait2");
            }
        }
    }

    /// <summary>
    /// Waits up to <paramref name="timeoutMilliseconds"/> for events (plain epoll_wait, on every Linux; the server's
    /// loops need no finer timeout).
    /// </summary>
    public int WaitMilliseconds(int timeoutMilliseconds)
    {
        while (true)
        {
            int count = epoll_wait(_fd, _events, MaxEvents, timeoutMilliseconds);
            if (count >= 0)
            {
                return count;
            }

            int error = Marshal.GetLastPInvokeError();
            if (error != Interrupted)
            {
                throw new Win32Exception(error, "epoll_wait");
            }
        }
    }

    public uint Events(int index) => BinaryPrimitives.ReadUInt32LittleEndian(new ReadOnlySpan<byte>(_events + (index * EventSize), 4));

    public ulong Token(int index) => BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(_events + (index * EventSize) + EventSize - 8, 8));

    private void Control(int operation, Socket socket, ulong token, uint events)
    {
        byte* ev = stackalloc byte[16];
        var span = new Span<byte>(ev, EventSize);
        BinaryPrimitives.WriteUInt32LittleEndian(span, events);
        BinaryPrimitives.WriteUInt64LittleEndian(span[(EventSize - 8)..], token);
        if (epoll_ctl(_fd, operation, (int)socket.SafeHandle.DangerousGetHandle(), ev) != 0)
        {
            throw new Win32Exception(Marshal.GetLastPInvokeError(), "epoll_ctl");
        }
    }

    public void Dispose()
    {
        NativeMemory.Free(_events);
        _ = close(_fd);
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int epoll_create1(int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int epoll_ctl(int epfd, int op, int fd, byte* ev);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int epoll_wait(int epfd, byte* events, int maxevents, int timeout);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int epoll_pwait2(int epfd, byte* events, int maxevents, long* timeout, void* sigmask);

    [LibraryImport("libc")]
    private static partial int close(int fd);
}
