namespace EnvelopeKms.Files;

/// <summary>
/// The mode a new output gets on Unix: the source's read/write bits plus owner read/write, never execute, and never
/// more than the process's umask allows (as for any file a program creates). The umask is read, never set: umask(2)
/// both reads and changes it for the whole process, and PowerShell runs other threads that create files meanwhile.
/// </summary>
public static class OutputPermissions
{
    private const UnixFileMode ReadWrite = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead
        | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite;

    /// <summary>Assumed when the umask cannot be read (Unix systems without /proc/self/status): owner only.</summary>
    internal const UnixFileMode UnknownUmask = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    /// <summary>The mode of a new output made from a source of <paramref name="sourceMode"/> under <paramref name="umask"/>.</summary>
    public static UnixFileMode For(UnixFileMode sourceMode, UnixFileMode umask)
        => ((sourceMode & ReadWrite) | UnixFileMode.UserRead | UnixFileMode.UserWrite) & ~umask;

    /// <summary>The mode of a file replaced by a new version of itself (re-wrapping, converting in place): kept.</summary>
    internal static UnixFileMode ForReplacement(UnixFileMode currentMode) => (currentMode & ReadWrite) | UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>
    /// The process's umask: on Linux the <c>Umask:</c> line of /proc/self/status (kernel 4.7+), read at each call
    /// because another thread may change it; elsewhere, or when it is missing, <see cref="UnknownUmask"/>, so outputs
    /// are owner-only rather than possibly looser than the user wants.
    /// </summary>
    public static UnixFileMode ReadUmask()
    {
        if (!OperatingSystem.IsLinux()) return UnknownUmask;
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
            {
                if (!line.StartsWith("Umask:", StringComparison.Ordinal)) continue;
                return ParseOctal(line.AsSpan(6).Trim());
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
        }
        return UnknownUmask;
    }

    internal static UnixFileMode ParseOctal(ReadOnlySpan<char> text)
    {
        if (text.Length is 0 or > 4) throw new FormatException("not an octal umask");
        int value = 0;
        foreach (char c in text)
        {
            if (c is < '0' or > '7') throw new FormatException("not an octal umask");
            value = value * 8 + (c - '0');
        }
        return (UnixFileMode)value;
    }
}
