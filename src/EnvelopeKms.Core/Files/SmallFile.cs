using System.Buffers;
using System.Security.Cryptography;

namespace EnvelopeKms.Files;

/// <summary>
/// The whole content of a small file, read ahead of its encryption or decryption. A batch of small files is read while
/// the data key is still on its way from KMS, so that round trip overlaps with file work instead of leaving the cores
/// idle. The buffer comes from the shared pool and is wiped when this is disposed (it may hold the user's plaintext).
/// </summary>
public sealed class SmallFile : IDisposable
{
    /// <summary>Files up to this size are read ahead: one frame of the default length, so one AES call each.</summary>
    public const int MaxLength = 64 << 10;

    private byte[]? _buffer;

    private SmallFile(string path, byte[] buffer, int length, UnixFileMode? mode)
    {
        Path = path;
        _buffer = buffer;
        Length = length;
        Mode = mode;
    }

    public string Path { get; }
    public int Length { get; }
    /// <summary>The source's permissions when it was read (null on Windows), which the output takes.</summary>
    public UnixFileMode? Mode { get; }
    /// <summary>What was read.</summary>
    public ReadOnlySpan<byte> Content => Buffer.AsSpan(0, Length);
    internal byte[] Buffer => _buffer ?? throw new ObjectDisposedException(nameof(SmallFile));

    /// <summary>
    /// Reads <paramref name="path"/> whole if it is a regular file of at most <see cref="MaxLength"/> bytes; null if it
    /// is larger or cannot be read now (the caller then takes the ordinary path, which reports any error properly).
    /// </summary>
    public static SmallFile? TryRead(string path)
    {
        byte[]? buffer = null;
        try
        {
            path = System.IO.Path.GetFullPath(path);
            using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            long length = RandomAccess.GetLength(handle);
            if (length > MaxLength) return null;
            buffer = ArrayPool<byte>.Shared.Rent((int)length + 1);
            // One byte more than the length: a file that grew since is not small any more.
            int read = 0;
            while (read < buffer.Length)
            {
                int n = RandomAccess.Read(handle, buffer.AsSpan(read), read);
                if (n == 0) break;
                read += n;
            }
            if (read > MaxLength || read == buffer.Length) return null; // the finally below wipes and returns the buffer
            UnixFileMode? mode = OperatingSystem.IsWindows() ? null : File.GetUnixFileMode(handle);
            var file = new SmallFile(path, buffer, read, mode);
            buffer = null;
            return file;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            return null;
        }
        finally
        {
            if (buffer is not null) Return(buffer, buffer.Length);
        }
    }

    private static void Return(byte[] buffer, int used)
    {
        CryptographicOperations.ZeroMemory(buffer.AsSpan(0, Math.Min(used, buffer.Length)));
        ArrayPool<byte>.Shared.Return(buffer);
    }

    public void Dispose()
    {
        var buffer = Interlocked.Exchange(ref _buffer, null);
        if (buffer is not null) Return(buffer, Length + 1);
    }
}
