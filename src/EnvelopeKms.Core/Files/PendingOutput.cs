namespace EnvelopeKms.Files;

/// <summary>
/// An output file being written: an owner-only temp file beside the destination (created new, never following or
/// reusing a name), which <see cref="Commit"/> flushes to disk and renames over the destination, and which
/// <see cref="Dispose"/> deletes when it was not committed. Nothing reaches the destination's name before the
/// commit, so a failure or cancellation at any point leaves the destination as it was.
/// </summary>
/// <remarks>
/// A batch of small files creates its outputs while the data key is still on its way from KMS (see
/// <see cref="SmallFile"/>): creating a file is a large part of what a small file costs, and it needs no key.
/// </remarks>
public sealed class PendingOutput : IDisposable
{
    private readonly bool _overwrite;
    private bool _committed;
    private bool _disposed;

    private PendingOutput(string source, string destination, bool overwrite, string tempPath, FileStream stream)
    {
        Source = source;
        Destination = destination;
        _overwrite = overwrite;
        TempPath = tempPath;
        Stream = stream;
    }

    /// <summary>The full path of the file the output is made from (whose permissions the output takes).</summary>
    public string Source { get; }

    /// <summary>The full path the output is renamed to on commit.</summary>
    public string Destination { get; }

    /// <summary>Where the output is written until the commit.</summary>
    public string TempPath { get; }

    /// <summary>The temp file, open for writing (unbuffered).</summary>
    public FileStream Stream { get; }

    /// <summary>
    /// Checks the paths (the destination is not the source, not a directory, and free unless
    /// <paramref name="overwrite"/>), then creates the temp file.
    /// </summary>
    public static PendingOutput Create(string source, string destination, bool overwrite)
    {
        (source, destination) = EnvelopeFileOperations.CheckPaths(source, destination, overwrite);
        return CreateChecked(source, destination, overwrite);
    }

    /// <summary>Creates the temp file for paths already checked and made full.</summary>
    internal static PendingOutput CreateChecked(string source, string destination, bool overwrite)
    {
        string temp = EnvelopeFileOperations.GetTempPath(destination);
        var options = new FileStreamOptions
        {
            Mode = FileMode.CreateNew, // never follows or reuses an existing name
            Access = FileAccess.Write,
            Share = FileShare.None,
            Options = FileOptions.Asynchronous,
            BufferSize = 0,
        };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        return new PendingOutput(source, destination, overwrite, temp, new FileStream(temp, options));
    }

    /// <summary>
    /// Flushes the temp file to disk and renames it over the destination; the output gets the source's permissions
    /// (<paramref name="sourceMode"/> when the caller read them already) as far as the umask allows. Returns the output's length. A cancellation
    /// that came while the output was written stops it here, before the destination changes.
    /// </summary>
    public long Commit(UnixFileMode? sourceMode = null, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_committed) throw new InvalidOperationException("The output was committed already.");
        cancellationToken.ThrowIfCancellationRequested();
        Stream.Flush(flushToDisk: true);
        long length = Stream.Length;
        if (OperatingSystem.IsWindows())
        {
            Stream.Dispose(); // an open file cannot be renamed
            EnvelopeFileOperations.Move(TempPath, Destination, _overwrite);
            _committed = true;
            return length;
        }
        // Rename while the file is still open and owner-only, then widen the mode through the handle: the temp name
        // never carries more than 0600, the output is at most briefly tighter than its final mode, and the chmod
        // reaches the inode just written, never whatever a path might point to.
        // A new output also obeys the umask (copying the source's bits alone gave a 0644 plaintext under umask 077); a
        // file replaced by a new version of itself keeps its mode.
        var current = sourceMode ?? File.GetUnixFileMode(Source);
        var mode = string.Equals(Source, Destination, StringComparison.Ordinal)
            ? OutputPermissions.ForReplacement(current)
            : OutputPermissions.For(current, OutputPermissions.ReadUmask());
        EnvelopeFileOperations.Move(TempPath, Destination, _overwrite);
        _committed = true;
        try { File.SetUnixFileMode(Stream.SafeFileHandle, mode); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { } // stays owner-only: tighter, never looser
        Stream.Dispose();
        return length;
    }

    /// <summary>Closes the temp file and, unless it was committed, deletes it.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        try { Stream.Dispose(); }
        catch (IOException) { } // a failed final flush: the file is deleted below anyway
        if (_committed) return;
        try { File.Delete(TempPath); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
