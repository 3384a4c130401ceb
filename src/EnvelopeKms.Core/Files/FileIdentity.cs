using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace EnvelopeKms.Files;

/// <summary>
/// Which file a path names, as the operating system tells files apart: device and inode on Linux and macOS, volume
/// serial number and file index on Windows; and how many hard links (names) the file has. Paths cannot answer "is
/// this the same file": a symbolic link in any component, a hard link, or a bind mount give one file many paths.
/// </summary>
public readonly record struct FileIdentity(ulong Device, ulong FileId, long LinkCount)
{
    /// <summary>Whether both name the same file (links are not compared).</summary>
    public bool SameFileAs(FileIdentity other) => Device == other.Device && FileId == other.FileId;

    /// <summary>
    /// The identity of <paramref name="path"/>: of the file it finally points to when <paramref name="followLinks"/>,
    /// else of the directory entry itself (a symbolic link is then a file of its own). False when nothing is there, or
    /// when the platform cannot tell (then callers fall back to comparing full paths).
    /// </summary>
    public static bool TryGet(string path, bool followLinks, out FileIdentity identity)
    {
        identity = default;
        try
        {
            if (OperatingSystem.IsLinux()) return Linux.TryGet(path, followLinks, out identity);
            if (OperatingSystem.IsMacOS()) return MacOS.TryGet(path, followLinks, out identity);
            if (OperatingSystem.IsWindows()) return Windows.TryGet(path, followLinks, out identity);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
        }
        return false;
    }

    /// <summary>
    /// Whether writing <paramref name="destination"/> (renaming a new file onto that name) would replace
    /// <paramref name="source"/>: the same full path, or a destination entry that is the source's own entry or the file
    /// the source finally points to (reached through a symbolic link in a directory component, or a hard link).
    /// </summary>
    public static bool IsSameFile(string source, string destination)
    {
        source = Path.GetFullPath(source);
        destination = Path.GetFullPath(destination);
        if (string.Equals(source, destination, OperatingSystem.IsLinux() ? StringComparison.Ordinal : StringComparison.OrdinalIgnoreCase)) return true;
        // The rename replaces the destination's entry (a link there is replaced, its target untouched): compare that
        // entry with both the source's entry and the file the source leads to.
        if (!TryGet(destination, followLinks: false, out var target)) return false;
        return (TryGet(source, followLinks: false, out var entry) && entry.SameFileAs(target))
            || (TryGet(source, followLinks: true, out var file) && file.SameFileAs(target));
    }

    /// <summary>statx(2): its structure has one layout on every Linux architecture (glibc 2.28+).</summary>
    private static class Linux
    {
        private const int AtFdCwd = -100, AtSymlinkNoFollow = 0x100;
        private const uint StatxBasicStats = 0x7ff;

        public static bool TryGet(string path, bool followLinks, out FileIdentity identity)
        {
            identity = default;
            var buffer = new byte[256]; // struct statx
            if (Statx(AtFdCwd, path, followLinks ? 0 : AtSymlinkNoFollow, StatxBasicStats, buffer) != 0) return false;
            uint links = MemoryMarshal.Read<uint>(buffer.AsSpan(16));                // stx_nlink
            ulong inode = MemoryMarshal.Read<ulong>(buffer.AsSpan(32));              // stx_ino
            uint major = MemoryMarshal.Read<uint>(buffer.AsSpan(136));               // stx_dev_major
            uint minor = MemoryMarshal.Read<uint>(buffer.AsSpan(140));               // stx_dev_minor
            identity = new FileIdentity(((ulong)major << 32) | minor, inode, links);
            return true;
        }

        [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
        private static extern int Statx(int dirfd, string path, int flags, uint mask, byte[] buffer);
    }

    /// <summary>stat(2) with 64-bit inodes (the only layout on arm64; the $INODE64 symbols on x64).</summary>
    private static class MacOS
    {
        public static bool TryGet(string path, bool followLinks, out FileIdentity identity)
        {
            identity = default;
            var buffer = new byte[256]; // struct stat is 144 bytes
            bool x64 = RuntimeInformation.ProcessArchitecture == Architecture.X64;
            int result = followLinks ? (x64 ? StatX64(path, buffer) : Stat(path, buffer)) : (x64 ? LStatX64(path, buffer) : LStat(path, buffer));
            if (result != 0) return false;
            uint device = MemoryMarshal.Read<uint>(buffer.AsSpan(0));  // st_dev (int32)
            ushort links = MemoryMarshal.Read<ushort>(buffer.AsSpan(6)); // st_nlink (uint16)
            ulong inode = MemoryMarshal.Read<ulong>(buffer.AsSpan(8));   // st_ino (uint64)
            identity = new FileIdentity(device, inode, links);
            return true;
        }

        [DllImport("libc", EntryPoint = "stat", SetLastError = true)]
        private static extern int Stat(string path, byte[] buffer);
        [DllImport("libc", EntryPoint = "lstat", SetLastError = true)]
        private static extern int LStat(string path, byte[] buffer);
        [DllImport("libc", EntryPoint = "stat$INODE64", SetLastError = true)]
        private static extern int StatX64(string path, byte[] buffer);
        [DllImport("libc", EntryPoint = "lstat$INODE64", SetLastError = true)]
        private static extern int LStatX64(string path, byte[] buffer);
    }

    /// <summary>GetFileInformationByHandle on a handle opened for no access (FILE_FLAG_OPEN_REPARSE_POINT: the link itself).</summary>
    private static class Windows
    {
        private const uint BackupSemantics = 0x02000000, OpenReparsePoint = 0x00200000, OpenExisting = 3;

        public static bool TryGet(string path, bool followLinks, out FileIdentity identity)
        {
            identity = default;
            using var handle = CreateFile(path, 0, FileShare.ReadWrite | FileShare.Delete, IntPtr.Zero, OpenExisting,
                BackupSemantics | (followLinks ? 0 : OpenReparsePoint), IntPtr.Zero);
            if (handle.IsInvalid) return false;
            if (!GetFileInformationByHandle(handle, out var info)) return false;
            identity = new FileIdentity(info.VolumeSerialNumber, ((ulong)info.FileIndexHigh << 32) | info.FileIndexLow, info.NumberOfLinks);
            return true;
        }

        [StructLayout(LayoutKind.Sequential, Pack = 4)]
        private struct ByHandleFileInformation
        {
            public uint FileAttributes;
            public ulong CreationTime, LastAccessTime, LastWriteTime; // FILETIMEs (two DWORDs each, 4-byte aligned)
            public uint VolumeSerialNumber, FileSizeHigh, FileSizeLow, NumberOfLinks, FileIndexHigh, FileIndexLow;
        }

        [DllImport("kernel32.dll", EntryPoint = "CreateFileW", CharSet = CharSet.Unicode, SetLastError = true)]
        private static extern SafeFileHandle CreateFile(string name, uint access, FileShare share, IntPtr security, uint disposition, uint flags, IntPtr template);

        [DllImport("kernel32.dll", SetLastError = true)]
        [return: MarshalAs(UnmanagedType.Bool)]
        private static extern bool GetFileInformationByHandle(SafeFileHandle handle, out ByHandleFileInformation information);
    }
}
