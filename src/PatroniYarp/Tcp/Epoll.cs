using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace PatroniYarp.Tcp;

/// <summary>Linux's epoll and eventfd, as <see cref="SocketEventLoop"/> uses them.</summary>
internal static unsafe partial class Epoll
{
    public const uint In = 0x001;
    public const uint Out = 0x004;
    public const uint Err = 0x008;
    public const uint Hup = 0x010;
    public const uint OneShot = 1u << 30;

    private const int CtlAdd = 1;
    private const int CtlDel = 2;
    private const int CtlMod = 3;
    private const int CloseOnExec = 0x80000;
    private const int NonBlocking = 0x800;
    private const int Interrupted = 4;

    /// <summary>struct epoll_event is packed on x86-64 (12 bytes) and naturally aligned elsewhere (16).</summary>
    public static readonly int EventSize = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 12 : 16;

    private static readonly int DataOffset = EventSize - sizeof(ulong);

    public static int Create()
    {
        var fd = epoll_create1(CloseOnExec);
        return fd >= 0 ? fd : throw Failure("epoll_create1");
    }

    public static int CreateEventFd()
    {
        var fd = eventfd(0, CloseOnExec | NonBlocking);
        return fd >= 0 ? fd : throw Failure("eventfd");
    }

    /// <summary>Adds, changes or (<paramref name="events"/> 0) removes a file descriptor; the errno on failure, else 0.</summary>
    public static int Control(int epoll, int fd, uint events, ulong data, bool registered)
    {
        var op = events == 0 ? CtlDel : registered ? CtlMod : CtlAdd;
        var buffer = stackalloc byte[16];
        Unsafe.WriteUnaligned(buffer, events);
        Unsafe.WriteUnaligned(buffer + DataOffset, data);
        return epoll_ctl(epoll, op, fd, buffer) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>Waits for events without a timeout; 0 when interrupted by a signal.</summary>
    public static int Wait(int epoll, byte* events, int capacity)
    {
        var count = epoll_wait(epoll, events, capacity, -1);
        if (count >= 0)
        {
            return count;
        }
        return Marshal.GetLastPInvokeError() == Interrupted ? 0 : throw Failure("epoll_wait");
    }

    public static (uint Events, ulong Data) Read(byte* events, int index)
    {
        var entry = events + index * EventSize;
        return (Unsafe.ReadUnaligned<uint>(entry), Unsafe.ReadUnaligned<ulong>(entry + DataOffset));
    }

    public static void Signal(int eventFd)
    {
        ulong one = 1;
        _ = write(eventFd, &one, sizeof(ulong));
    }

    public static void Drain(int eventFd)
    {
        ulong count;
        _ = read(eventFd, &count, sizeof(ulong));
    }

    public static void Close(int fd) => _ = close(fd);

    private static InvalidOperationException Failure(string call) =>
        new($"{call} failed (errno {Marshal.GetLastPInvokeError()}).");

    [LibraryImport("libc", SetLastError = true)]
    private static partial int epoll_create1(int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int epoll_ctl(int epfd, int op, int fd, byte* @event);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int epoll_wait(int epfd, byte* events, int maxevents, int timeout);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int eventfd(uint initval, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint read(int fd, void* buffer, nint count);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint write(int fd, void* buffer, nint count);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);
}
