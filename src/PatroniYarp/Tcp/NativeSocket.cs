using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace PatroniYarp.Tcp;

/// <summary>
/// The socket calls of the TCP loop, made on the descriptor itself (Linux). A <see cref="Socket"/> made non-blocking
/// creates .NET's async context for it (about 300 bytes and six locks per session), and its connect throws for every
/// connect under way; these never allocate, never throw on the hot path and say WouldBlock instead of waiting.
/// </summary>
internal static unsafe partial class NativeSocket
{
    private const int AfInet = 2;
    private const int AfInet6 = 10;
    private const int SockStream = 1;
    private const int SockNonBlock = 0x800;
    private const int SockCloseOnExec = 0x80000;
    private const int SolSocket = 1;
    private const int SoError = 4;
    private const int IpProtoTcp = 6;
    private const int TcpNoDelay = 1;
    private const int MsgPeek = 0x2;
    private const int MsgNoSignal = 0x4000;
    private const int ShutWrite = 1;
    private const int FionRead = 0x541B;
    private const int SockAddrCapacity = 28;
    private const short PollOut = 0x4;

    /// <summary>A new non-blocking TCP socket of <paramref name="family"/>.</summary>
    public static SocketDescriptor Create(AddressFamily family)
    {
        var fd = socket(family == AddressFamily.InterNetworkV6 ? AfInet6 : AfInet, SockStream | SockNonBlock | SockCloseOnExec, 0);
        return fd >= 0 ? new SocketDescriptor(fd) : throw new SocketException((int)LastError());
    }

    /// <summary>A pending connection of a listening socket, non-blocking, with its peer's address; null and why when none.</summary>
    public static SocketDescriptor? Accept(SafeHandle listener, out IPEndPoint? remote, out SocketError error)
    {
        var address = stackalloc byte[SockAddrCapacity];
        var length = SockAddrCapacity;
        int fd;
        using (var handle = new Use(listener))
        {
            fd = accept4(handle.Fd, address, &length, SockNonBlock | SockCloseOnExec);
        }
        if (fd < 0)
        {
            remote = null;
            error = LastError();
            return null;
        }
        remote = Read(address, length);
        error = SocketError.Success;
        return new SocketDescriptor(fd);
    }

    /// <summary>Starts connecting: Success, WouldBlock (under way: writable when done) or why not.</summary>
    public static SocketError Connect(SafeHandle socket, IPEndPoint target)
    {
        var address = stackalloc byte[SockAddrCapacity];
        var length = Write(address, target);
        using var handle = new Use(socket);
        return connect(handle.Fd, address, length) == 0 ? SocketError.Success : LastError();
    }

    /// <summary>What a finished non-blocking connect ended with (SO_ERROR).</summary>
    public static SocketError PendingError(SafeHandle socket)
    {
        int value;
        var length = sizeof(int);
        using var handle = new Use(socket);
        return getsockopt(handle.Fd, SolSocket, SoError, &value, &length) != 0 ? LastError()
            : value == 0 ? SocketError.Success
            : ToSocketError(value);
    }

    /// <summary>
    /// Whether a connect under way has ended, either way, without waiting: on loopback the handshake usually ends within
    /// the connect call itself, and then no trip through the loop is needed.
    /// </summary>
    public static bool HasConnectEnded(SafeHandle socket)
    {
        using var handle = new Use(socket);
        var entry = new PollEntry { Fd = handle.Fd, Events = PollOut };
        return poll(&entry, 1, 0) == 1;
    }

    /// <summary>No Nagle delay: a proxy passes every message on as it comes.</summary>
    public static void SetNoDelay(SafeHandle socket)
    {
        var one = 1;
        using var handle = new Use(socket);
        _ = setsockopt(handle.Fd, IpProtoTcp, TcpNoDelay, &one, sizeof(int));
    }

    /// <summary>Bytes received (0: the peer's end), or -1 and why (WouldBlock: nothing there yet).</summary>
    public static int Receive(SafeHandle socket, Span<byte> buffer, bool peek, out SocketError error)
    {
        nint received;
        using (var handle = new Use(socket))
        fixed (byte* data = buffer)
        {
            received = recv(handle.Fd, data, buffer.Length, peek ? MsgPeek : 0);
        }
        error = received >= 0 ? SocketError.Success : LastError();
        return (int)received;
    }

    /// <summary>Bytes the kernel took, or -1 and why (WouldBlock: its buffer is full).</summary>
    public static int Send(SafeHandle socket, ReadOnlySpan<byte> data, out SocketError error)
    {
        nint sent;
        using (var handle = new Use(socket))
        fixed (byte* bytes = data)
        {
            sent = send(handle.Fd, bytes, data.Length, MsgNoSignal);
        }
        error = sent >= 0 ? SocketError.Success : LastError();
        return (int)sent;
    }

    public static SocketError ShutdownSend(SafeHandle socket)
    {
        using var handle = new Use(socket);
        return shutdown(handle.Fd, ShutWrite) == 0 ? SocketError.Success : LastError();
    }

    /// <summary>Bytes waiting to be received (FIONREAD).</summary>
    public static int Available(SafeHandle socket)
    {
        int count;
        using var handle = new Use(socket);
        return ioctl(handle.Fd, FionRead, &count) == 0 ? count : 0;
    }

    public static IPEndPoint? LocalEndPoint(SafeHandle socket)
    {
        var address = stackalloc byte[SockAddrCapacity];
        var length = SockAddrCapacity;
        using var handle = new Use(socket);
        return getsockname(handle.Fd, address, &length) == 0 ? Read(address, length) : null;
    }

    /// <summary>struct sockaddr_in (16 bytes) or sockaddr_in6 (28): the family in host order, the port in network order.</summary>
    private static int Write(byte* address, IPEndPoint target)
    {
        var span = new Span<byte>(address, SockAddrCapacity);
        span.Clear();
        BinaryPrimitives.WriteUInt16BigEndian(span[2..], (ushort)target.Port);
        if (target.AddressFamily == AddressFamily.InterNetwork)
        {
            Unsafe.WriteUnaligned(address, (ushort)AfInet);
            target.Address.TryWriteBytes(span[4..8], out _);
            return 16;
        }
        Unsafe.WriteUnaligned(address, (ushort)AfInet6);
        target.Address.TryWriteBytes(span[8..24], out _);
        Unsafe.WriteUnaligned(address + 24, (uint)target.Address.ScopeId);
        return SockAddrCapacity;
    }

    private static IPEndPoint? Read(byte* address, int length)
    {
        var span = new ReadOnlySpan<byte>(address, Math.Min(length, SockAddrCapacity));
        var port = BinaryPrimitives.ReadUInt16BigEndian(span[2..]);
        return Unsafe.ReadUnaligned<ushort>(address) switch
        {
            AfInet when length >= 16 => new IPEndPoint(new IPAddress(span[4..8]), port),
            AfInet6 when length >= 28 => new IPEndPoint(new IPAddress(span[8..24], Unsafe.ReadUnaligned<uint>(address + 24)), port),
            _ => null,
        };
    }

    private static SocketError LastError() => ToSocketError(Marshal.GetLastPInvokeError());

    /// <summary>
    /// The process is out of descriptors (EMFILE, ENFILE) or memory (ENOBUFS, ENOMEM): its own limit, not the peer's
    /// fault, and passing once descriptors are freed.
    /// </summary>
    internal static bool IsOutOfResources(SocketError error) =>
        error is SocketError.TooManyOpenSockets or SocketError.NoBufferSpaceAvailable;

    /// <summary>An errno as the <see cref="SocketError"/> a <see cref="SocketException"/> carries.</summary>
    internal static SocketError ToSocketError(int errno) => errno switch
    {
        4 => SocketError.Interrupted,
        9 => SocketError.OperationAborted,
        11 or 115 => SocketError.WouldBlock,
        12 or 28 or 105 => SocketError.NoBufferSpaceAvailable,
        23 or 24 => SocketError.TooManyOpenSockets,
        32 => SocketError.Shutdown,
        99 => SocketError.AddressNotAvailable,
        101 => SocketError.NetworkUnreachable,
        103 => SocketError.ConnectionAborted,
        104 => SocketError.ConnectionReset,
        107 => SocketError.NotConnected,
        110 => SocketError.TimedOut,
        111 => SocketError.ConnectionRefused,
        113 => SocketError.HostUnreachable,
        _ => SocketError.SocketError,
    };

    /// <summary>
    /// A socket's descriptor, closed with a plain close(): the peer gets a FIN after whatever was sent. (A
    /// <see cref="SafeSocketHandle"/> that no <see cref="Socket"/> owns closes abortively, with a reset.)
    /// </summary>
    internal sealed class SocketDescriptor : SafeHandle
    {
        public SocketDescriptor(int fd)
            : base(-1, ownsHandle: true) => SetHandle(fd);

        public override bool IsInvalid => handle == -1;

        protected override bool ReleaseHandle() => close((int)handle) == 0;
    }

    /// <summary>Holds the handle for one call: its descriptor cannot be closed, and its number reused, meanwhile.</summary>
    internal readonly ref struct Use
    {
        private readonly SafeHandle _handle;

        public Use(SafeHandle handle)
        {
            var added = false;
            handle.DangerousAddRef(ref added);
            _handle = handle;
            Fd = (int)handle.DangerousGetHandle();
        }

        public int Fd { get; }

        public void Dispose() => _handle.DangerousRelease();
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int socket(int domain, int type, int protocol);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int accept4(int fd, byte* address, int* length, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int connect(int fd, byte* address, int length);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int getsockopt(int fd, int level, int name, void* value, int* length);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int setsockopt(int fd, int level, int name, void* value, int length);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint recv(int fd, byte* buffer, nint length, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint send(int fd, byte* buffer, nint length, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int shutdown(int fd, int how);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int ioctl(int fd, nint request, int* value);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int poll(PollEntry* entries, nuint count, int timeout);

    [StructLayout(LayoutKind.Sequential)]
    private struct PollEntry
    {
        public int Fd;
        public short Events;
        public short ReturnedEvents;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int getsockname(int fd, byte* address, int* length);
}
