using System.Buffers;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;

namespace EnvelopeKms.Files;

/// <summary>The destination exists and overwriting was not asked for.</summary>
public sealed class DestinationExistsException(string path)
    : IOException($"The destination '{path}' already exists.")
{
    public string Path { get; } = path;
}

/// <summary>The destination names the source file itself (by file identity: through a link, a symlinked directory or the same path).</summary>
public sealed class DestinationIsSourceException(string path)
    : IOException($"The destination '{path}' is the source file itself (the same file, reached by another path or link); nothing was written.")
{
    public string Path { get; } = path;
}

/// <summary>
/// Result of writing one output file. <see cref="Header"/> is null for the legacy format. <see cref="UnwrappedFrom"/>
/// (decryption only) is the wrapped-key entry that gave the data key.
/// </summary>
public sealed record EnvelopeFileResult(string Source, string Destination, EnvelopeHeader? Header, long PlaintextLength, long OutputLength, string? KeyId,
    WrappedDataKey? UnwrappedFrom = null)
{
    /// <summary>EKMS v2: one header slot was damaged or stale and the other one was used (a warning for the user); else null.</summary>
    public string? SlotProblem => Header?.DescribeSlotProblem();
}

/// <summary>
/// File-to-file encryption and decryption that never exposes a partial or unauthenticated output: the output is
/// written to an owner-only temp file beside the destination, flushed, and renamed into place only after the last
/// frame has been written (encrypt) or authenticated (decrypt). On any failure or cancellation the temp file is
/// deleted and the destination is left as it was. Sources are only ever opened for reading.
/// </summary>
public static class EnvelopeFileOperations
{
    /// <summary>Temp files carry this suffix so leftovers from a killed process are recognisable.</summary>
    public const string TempSuffix = ".ekms-tmp";

    public static async Task<EnvelopeFileResult> EncryptFileAsync(string source, string destination, DataKey dataKey, EncryptionContext context,
        bool overwrite = false, EnvelopeEncryptOptions? options = null, ProgressCounter? progress = null, CancellationToken cancellationToken = default)
    {
        (source, destination) = CheckPaths(source, destination, overwrite);
        await using var input = OpenSource(source);
        EnvelopeHeader? header = null;
        long inputLength = input.Length;
        long outputLength = await WriteAtomicallyAsync(source, destination, overwrite, async output =>
        {
            header = await Envelope.EncryptAsync(input, output, dataKey, context, options, progress, cancellationToken).ConfigureAwait(false);
        }, cancellationToken).ConfigureAwait(false);
        // A source that grew or shrank while it was read is encrypted as read: report that length, not the one at open.
        long plaintextLength = header!.GetPlaintextLength(outputLength) ?? inputLength;
        return new EnvelopeFileResult(source, destination, header, plaintextLength, outputLength, dataKey.KeyId);
    }

    public static async Task<EnvelopeFileResult> DecryptFileAsync(string source, string destination, IDataKeyProvider keyProvider,
        bool overwrite = false, EnvelopeDecryptOptions? options = null, ProgressCounter? progress = null, CancellationToken cancellationToken = default)
    {
        options ??= EnvelopeDecryptOptions.Default;
        (source, destination) = CheckPaths(source, destination, overwrite);
        await using var input = OpenSource(source);
        // Everything that can fail without writing (header, context, KMS) happens before the temp file exists.
        var (header, dataKey) = await Envelope.ReadHeaderAndUnwrapAsync(input, keyProvider, options, cancellationToken).ConfigureAwait(false);
        using var _ = dataKey;
        EnvelopeDecryptResult? result = null;
        long outputLength = await WriteAtomicallyAsync(source, destination, overwrite, async output =>
        {
            result = await Envelope.DecryptBodyAsync(header, input, output, dataKey, options, progress, cancellationToken).ConfigureAwait(false);
        }, cancellationToken).ConfigureAwait(false);
        return new EnvelopeFileResult(source, destination, header, result!.PlaintextLength, outputLength, result.KeyId, result.UnwrappedFrom);
    }

    /// <summary>
    /// Encrypts a small source read ahead by <see cref="SmallFile.TryRead"/> (while the data key was still on its way
    /// from KMS): the same result as <see cref="EncryptFileAsync(string, string, DataKey, EncryptionContext, bool, EnvelopeEncryptOptions?, ProgressCounter?, CancellationToken)"/>
    /// for the content read.
    /// </summary>
    public static async Task<EnvelopeFileResult> EncryptFileAsync(SmallFile source, string destination, DataKey dataKey, EncryptionContext context,
        bool overwrite = false, EnvelopeEncryptOptions? options = null, ProgressCounter? progress = null, CancellationToken cancellationToken = default)
    {
        using var output = PendingOutput.Create(source.Path, destination, overwrite);
        return await EncryptFileAsync(source, output, dataKey, context, options, progress, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Encrypts a small source read ahead into an output created ahead too (<see cref="PendingOutput.Create"/>), and
    /// commits it. The caller disposes <paramref name="output"/>, which deletes it if this failed.
    /// </summary>
    public static async Task<EnvelopeFileResult> EncryptFileAsync(SmallFile source, PendingOutput output, DataKey dataKey, EncryptionContext context,
        EnvelopeEncryptOptions? options = null, ProgressCounter? progress = null, CancellationToken cancellationToken = default)
    {
        CheckSameSource(source, output);
        // Sealed in memory, then written with one call: every await here completes at once, so a small file costs no
        // hop to another thread (on Unix each async file write is one).
        var sealedBytes = new MemoryStream(source.Length + 1024);
        using var input = new MemoryStream(source.Buffer, 0, source.Length, writable: false);
        var header = await Envelope.EncryptAsync(input, sealedBytes, dataKey, context, options, null, cancellationToken).ConfigureAwait(false);
        output.Stream.Write(sealedBytes.GetBuffer(), 0, (int)sealedBytes.Length);
        long outputLength = output.Commit(source.Mode, cancellationToken);
        progress?.Add(source.Length);
        return new EnvelopeFileResult(output.Source, output.Destination, header, source.Length, outputLength, dataKey.KeyId);
    }

    /// <summary>Decrypts a small EKMS file read ahead by <see cref="SmallFile.TryRead"/>: the same as the path-based overload.</summary>
    public static async Task<EnvelopeFileResult> DecryptFileAsync(SmallFile source, string destination, IDataKeyProvider keyProvider,
        bool overwrite = false, EnvelopeDecryptOptions? options = null, ProgressCounter? progress = null, CancellationToken cancellationToken = default)
    {
        options ??= EnvelopeDecryptOptions.Default;
        string path;
        (path, destination) = CheckPaths(source.Path, destination, overwrite);
        using var input = new MemoryStream(source.Buffer, 0, source.Length, writable: false);
        // Everything that can fail without writing (header, context, KMS) happens before the temp file exists.
        var (header, dataKey) = await Envelope.ReadHeaderAndUnwrapAsync(input, keyProvider, options, cancellationToken).ConfigureAwait(false);
        using var _ = dataKey;
        using var output = PendingOutput.CreateChecked(path, destination, overwrite);
        return await DecryptBodyAsync(source, input, header, dataKey, output, options, progress, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Decrypts a small EKMS file read ahead into an output created ahead too (<see cref="PendingOutput.Create"/>),
    /// and commits it once every frame has authenticated. The caller disposes <paramref name="output"/>, which deletes
    /// it if this failed.
    /// </summary>
    public static async Task<EnvelopeFileResult> DecryptFileAsync(SmallFile source, PendingOutput output, IDataKeyProvider keyProvider,
        EnvelopeDecryptOptions? options = null, ProgressCounter? progress = null, CancellationToken cancellationToken = default)
    {
        options ??= EnvelopeDecryptOptions.Default;
        CheckSameSource(source, output);
        using var input = new MemoryStream(source.Buffer, 0, source.Length, writable: false);
        var (header, dataKey) = await Envelope.ReadHeaderAndUnwrapAsync(input, keyProvider, options, cancellationToken).ConfigureAwait(false);
        using var _ = dataKey;
        return await DecryptBodyAsync(source, input, header, dataKey, output, options, progress, cancellationToken).ConfigureAwait(false);
    }

    private static void CheckSameSource(SmallFile source, PendingOutput output)
    {
        if (!string.Equals(source.Path, output.Source, StringComparison.Ordinal))
            throw new ArgumentException($"The output was created for '{output.Source}', not for '{source.Path}'.", nameof(output));
    }

    private static async Task<EnvelopeFileResult> DecryptBodyAsync(SmallFile source, MemoryStream input, EnvelopeHeader header, DataKey dataKey, PendingOutput output,
        EnvelopeDecryptOptions options, ProgressCounter? progress, CancellationToken cancellationToken)
    {
        // Opened in memory (a wiped pooled buffer: the plaintext is never longer than the file), then written with one
        // call; nothing reaches the output before the last frame has authenticated.
        byte[] plaintext = ArrayPool<byte>.Shared.Rent(Math.Max(1, source.Length));
        try
        {
            var opened = new MemoryStream(plaintext, 0, plaintext.Length, writable: true, publiclyVisible: true);
            var result = await Envelope.DecryptBodyAsync(header, input, opened, dataKey, options, null, cancellationToken).ConfigureAwait(false);
            output.Stream.Write(plaintext, 0, (int)opened.Position);
            long outputLength = output.Commit(source.Mode, cancellationToken);
            progress?.Add(result.PlaintextLength);
            return new EnvelopeFileResult(output.Source, output.Destination, header, result.PlaintextLength, outputLength, result.KeyId, result.UnwrappedFrom);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plaintext);
            ArrayPool<byte>.Shared.Return(plaintext);
        }
    }

    /// <summary>Authenticates a whole file without writing plaintext anywhere.</summary>
    public static async Task<EnvelopeDecryptResult> VerifyFileAsync(string path, IDataKeyProvider keyProvider, EnvelopeDecryptOptions? options = null,
        ProgressCounter? progress = null, CancellationToken cancellationToken = default)
    {
        await using var input = OpenSource(Path.GetFullPath(path));
        return await Envelope.DecryptAsync(input, Stream.Null, keyProvider, options, progress, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Authenticates a file just written, with the data key still in hand (no KMS call).</summary>
    public static async Task VerifyFileAsync(string path, DataKey dataKey, CancellationToken cancellationToken = default)
    {
        await using var input = OpenSource(Path.GetFullPath(path));
        var header = await EnvelopeHeader.ReadAsync(input, EnvelopeReadLimits.Default, cancellationToken).ConfigureAwait(false);
        await Envelope.DecryptBodyAsync(header, input, Stream.Null, dataKey, null, null, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reads only the header: no key, no KMS call.</summary>
    public static async Task<EnvelopeHeader> ReadHeaderAsync(string path, EnvelopeReadLimits? limits = null, CancellationToken cancellationToken = default)
    {
        await using var input = OpenSource(Path.GetFullPath(path));
        return await EnvelopeHeader.ReadAsync(input, limits, cancellationToken).ConfigureAwait(false);
    }

    internal static FileStream OpenSource(string path) => new(path, new FileStreamOptions
    {
        Mode = FileMode.Open,
        Access = FileAccess.Read,
        Share = FileShare.Read,
        Options = FileOptions.Asynchronous | FileOptions.SequentialScan,
        BufferSize = 0, // the frame processor reads whole batches; a second buffer would only copy
    });

    internal static (string Source, string Destination) CheckPaths(string source, string destination, bool overwrite)
    {
        source = Path.GetFullPath(source);
        destination = Path.GetFullPath(destination);
        // By file identity, not by path: a destination reached through a symlinked directory or a hard link is the
        // source too, and with -Force -RemoveSource both the plaintext and its encrypted copy were lost that way.
        if (FileIdentity.IsSameFile(source, destination))
            throw new DestinationIsSourceException(destination);
        if (Directory.Exists(destination))
            throw new IOException($"The destination '{destination}' is a directory.");
        if (!overwrite && (File.Exists(destination) || IsSymbolicLink(destination)))
            throw new DestinationExistsException(destination);
        return (source, destination);
    }

    private static bool IsSymbolicLink(string path)
    {
        try { return new FileInfo(path).LinkTarget is not null; }
        catch (IOException) { return false; }
    }

    private static readonly System.Text.RegularExpressions.Regex TempNamePattern =
        new(@"^\..+\.[0-9a-f]{32}" + System.Text.RegularExpressions.Regex.Escape(TempSuffix) + @"\z", System.Text.RegularExpressions.RegexOptions.CultureInvariant);

    /// <summary>Whether <paramref name="fileName"/> has the shape of a temp file this library writes (<c>.&lt;name&gt;.&lt;32 hex&gt;.ekms-tmp</c>).</summary>
    public static bool IsTempFileName(string fileName) => TempNamePattern.IsMatch(fileName);

    /// <summary>
    /// Temp files in <paramref name="directory"/> (not below it): left by a process that was killed, or being written
    /// by one still running. Never deletes anything; an unreadable directory gives an empty list.
    /// </summary>
    public static IReadOnlyList<FileInfo> FindTempFiles(string directory)
    {
        try
        {
            return new DirectoryInfo(directory).EnumerateFiles("*" + TempSuffix, new EnumerationOptions { AttributesToSkip = 0, IgnoreInaccessible = true })
                .Where(f => IsTempFileName(f.Name)).OrderBy(f => f.Name, StringComparer.Ordinal).ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Security.SecurityException)
        {
            return [];
        }
    }

    /// <summary>Creates the temp path for <paramref name="destination"/>: hidden, beside it, recognisable, unique.</summary>
    public static string GetTempPath(string destination)
    {
        string directory = Path.GetDirectoryName(destination)!;
        string name = TruncateUtf8(Path.GetFileName(destination), MaxTempStemBytes);
        return Path.Combine(directory, $".{name}.{Guid.NewGuid():N}{TempSuffix}");
    }

    /// <summary>
    /// Bytes of the destination's name kept in the temp name. File systems limit a name to 255 bytes (NAME_MAX, in
    /// UTF-8 on Linux and macOS; 255 UTF-16 units on NTFS), and the temp name adds "." + "." + 32 hex + the suffix:
    /// 43 bytes. Counting characters instead of bytes let a 255-byte non-ASCII name produce a temp name too long
    /// to create.
    /// </summary>
    internal const int MaxTempStemBytes = 200;

    /// <summary>The longest prefix of <paramref name="name"/> whose UTF-8 form fits in <paramref name="maxBytes"/>, never splitting a surrogate pair.</summary>
    internal static string TruncateUtf8(string name, int maxBytes)
    {
        if (System.Text.Encoding.UTF8.GetByteCount(name) <= maxBytes) return name;
        int bytes = 0, i = 0;
        while (i < name.Length)
        {
            int width = char.IsSurrogatePair(name, i) ? 2 : 1;
            int n = System.Text.Encoding.UTF8.GetByteCount(name.AsSpan(i, width));
            if (bytes + n > maxBytes) break;
            bytes += n;
            i += width;
        }
        return name[..i];
    }

    /// <summary>Checks the paths, then writes through <paramref name="write"/> to a temp file renamed into place on success.</summary>
    internal static Task<long> WriteFileAtomicallyAsync(string source, string destination, bool overwrite, Func<FileStream, Task> write, CancellationToken cancellationToken)
    {
        (source, destination) = CheckPaths(source, destination, overwrite);
        return WriteAtomicallyAsync(source, destination, overwrite, write, cancellationToken);
    }

    /// <summary>
    /// Replaces <paramref name="path"/> with what <paramref name="write"/> produces: a temp file beside it, flushed to
    /// disk, renamed over it only when complete; the file's permissions are kept. (Update-EnvelopeFileKey's full rewrite.)
    /// </summary>
    internal static Task<long> ReplaceFileAtomicallyAsync(string path, Func<FileStream, Task> write, CancellationToken cancellationToken)
        => WriteAtomicallyAsync(path, path, overwrite: true, write, cancellationToken);

    private static async Task<long> WriteAtomicallyAsync(string source, string destination, bool overwrite, Func<FileStream, Task> write, CancellationToken cancellationToken)
    {
        using var output = PendingOutput.CreateChecked(source, destination, overwrite);
        await write(output.Stream).ConfigureAwait(false);
        return output.Commit(cancellationToken: cancellationToken);
    }

    /// <summary>
    /// Renames the finished temp file to the destination. Without <paramref name="overwrite"/> this must fail if the
    /// destination exists even when another process creates it at the same moment (File.Move's check-then-rename
    /// lets two writers both "win", the second silently replacing the first); so on Unix the name is claimed with
    /// link(2), which fails atomically with EEXIST, and the temp name is then removed.
    /// </summary>
    internal static void Move(string temp, string destination, bool overwrite)
    {
        if (!overwrite && !OperatingSystem.IsWindows())
        {
            if (NoReplace.Link(temp, destination) == 0)
            {
                File.Delete(temp);
                return;
            }
            if (Marshal.GetLastPInvokeError() == NoReplace.EEXIST) throw new DestinationExistsException(destination);
            // A file system without hard links (FAT, some network shares): fall back to File.Move below.
        }
        try
        {
            File.Move(temp, destination, overwrite);
        }
        catch (IOException) when (!overwrite && (File.Exists(destination) || IsSymbolicLink(destination)))
        {
            throw new DestinationExistsException(destination);
        }
    }

    private static class NoReplace
    {
        public const int EEXIST = 17; // the same value on Linux and macOS

        [DllImport("libc", EntryPoint = "link", SetLastError = true)]
        public static extern int Link(string existingPath, string newPath);
    }
}
