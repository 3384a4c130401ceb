using System.Runtime.InteropServices;

namespace EnvelopeKms.PowerShell.Infrastructure;

/// <summary>
/// How many files this process may have open (RLIMIT_NOFILE on Linux and macOS, which .NET raises to the hard limit
/// at start-up). Outputs created ahead of their data key each hold a descriptor until committed, so their number
/// is bounded by a share of this limit, leaving the rest to the sources, the KMS connections and the host.
/// </summary>
internal static class OpenFileLimit
{
    /// <summary>Used when the limit cannot be read: the smallest limit still common (Linux's traditional soft limit).</summary>
    private const int Assumed = 1024;

    public static int Current { get; } = Read();

    /// <summary>A quarter of what the limit leaves beyond 256 descriptors, at most 1,024 (more would not be used).</summary>
    public static int OutputsAheadFor(int limit) => (int)Math.Clamp((limit - 256L) / 4, 0, 1024);

    private static int Read()
    {
        if (OperatingSystem.IsWindows()) return int.MaxValue; // handles, not descriptors: no comparable per-process limit
        try
        {
            int resource = OperatingSystem.IsMacOS() ? 8 : 7; // RLIMIT_NOFILE
            if (GetRLimit(resource, out var limit) != 0) return Assumed;
            return (int)Math.Min(limit.Current, int.MaxValue);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return Assumed;
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public nuint Current; // rlim_t: unsigned long on Linux, uint64_t on macOS (64-bit only)
        public nuint Maximum;
    }

    [DllImport("libc", EntryPoint = "getrlimit", SetLastError = true)]
    private static extern int GetRLimit(int resource, out RLimit limit);
}
