using System.Security.Cryptography;
using EnvelopeKms.AlibabaSdk;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using EnvelopeKms.Legacy;

namespace EnvelopeKms.Files;

/// <summary>
/// What a conversion did: the file written, the format it came from and went to, and the keys used (the new data key
/// only as its wrapped copies: its plaintext is wiped when the conversion ends).
/// </summary>
public sealed record EnvelopeConvertResult(string Source, string Destination, EnvelopeFileFormat SourceFormat, EnvelopeFileFormat TargetFormat,
    long PlaintextLength, long OutputLength, string? SourceKeyId, WrappedDataKey? UnwrappedFrom, IReadOnlyList<WrappedDataKey> NewWrappedKeys, bool InPlace);

/// <summary>
/// Converts a file between the formats this library reads and writes — EKMS, the documentation sample's legacy
/// format and the Alibaba Cloud Encryption SDK messages — without plaintext on disk: the source is decrypted and
/// authenticated into a pinned buffer, encrypted again under a new data key in memory, the new ciphertext is
/// decrypted and compared with the plaintext, and only then written (temp file, rename). The buffers are wiped.
/// </summary>
/// <remarks>
/// Legacy and Encryption SDK messages are one AEAD message each, processed whole in memory by their own readers and
/// writers, so a conversion to or from them is too; <see cref="MaxPlaintextLength"/> bounds it (memory is about
/// three times the file size at the peak). EKMS to EKMS is not a conversion: Update-EnvelopeFileKey re-wraps.
/// </remarks>
public static class EnvelopeConverter
{
    /// <summary>The largest plaintext converted (held in memory with its new ciphertext).</summary>
    public const long MaxPlaintextLength = 1L << 30;

    /// <summary>The formats a conversion can produce.</summary>
    public static bool IsTarget(EnvelopeFileFormat format) => format is EnvelopeFileFormat.Ekms or EnvelopeFileFormat.Legacy
        or EnvelopeFileFormat.AlibabaSdk or EnvelopeFileFormat.AlibabaSdkStream;

    /// <summary>
    /// Converts <paramref name="source"/> (of <paramref name="sourceFormat"/>, as detected by content) to
    /// <paramref name="target"/> at <paramref name="destination"/>; the same path as the source replaces it in place.
    /// <paramref name="acquireKey"/> supplies the new data key for the target's encryption context (the source's
    /// context, or none for the legacy format); <paramref name="sdkArns"/> are its keys' ARNs for an Encryption SDK
    /// target. <paramref name="confirmNewKey"/>, when given, is awaited before an in-place replacement: it must prove
    /// that KMS unwraps the new data key, so a file is never replaced by one its owner cannot decrypt.
    /// </summary>
    public static async Task<EnvelopeConvertResult> ConvertFileAsync(string source, EnvelopeFileFormat sourceFormat, string destination, EnvelopeFileFormat target,
        IDataKeyProvider unwrapper, EncryptionContext requiredContext,
        Func<EncryptionContext, long, CancellationToken, Task<DataKeyLease>> acquireKey, IReadOnlyList<string>? sdkArns,
        Func<DataKey, EncryptionContext, CancellationToken, Task>? confirmNewKey, bool overwrite, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(unwrapper);
        ArgumentNullException.ThrowIfNull(acquireKey);
        if (!IsTarget(target)) throw new ArgumentException($"Cannot convert to {target}.", nameof(target));
        if (sourceFormat == target) throw new ArgumentException($"The file is already in the {target} format.", nameof(target));
        if (target is EnvelopeFileFormat.AlibabaSdk or EnvelopeFileFormat.AlibabaSdkStream && (sdkArns is null || sdkArns.Count == 0))
            throw new ArgumentException("An Encryption SDK target needs the key ARNs.", nameof(sdkArns));
        source = Path.GetFullPath(source);
        destination = Path.GetFullPath(destination);
        bool inPlace = string.Equals(source, destination, OperatingSystem.IsLinux() ? StringComparison.Ordinal : StringComparison.OrdinalIgnoreCase);
        // Another path to the same file (a symlinked directory, a hard link) is refused: in place means the same path.
        if (!inPlace) EnvelopeFileOperations.CheckPaths(source, destination, overwrite);
        // The plaintext, the new ciphertext, the verification copy and the source reader's own buffer: up to four times
        // the file, from the budget shared by every whole-message operation of the process.
        long bytes = 4 * Math.Min(new FileInfo(source).Length, MaxPlaintextLength);
        return await WholeMessageBudget.RunAsync(bytes, () => ConvertCoreAsync(source, sourceFormat, destination, target, unwrapper, requiredContext,
            acquireKey, sdkArns, confirmNewKey, overwrite, inPlace, cancellationToken), cancellationToken).ConfigureAwait(false);
    }

    private static async Task<EnvelopeConvertResult> ConvertCoreAsync(string source, EnvelopeFileFormat sourceFormat, string destination, EnvelopeFileFormat target,
        IDataKeyProvider unwrapper, EncryptionContext requiredContext,
        Func<EncryptionContext, long, CancellationToken, Task<DataKeyLease>> acquireKey, IReadOnlyList<string>? sdkArns,
        Func<DataKey, EncryptionContext, CancellationToken, Task>? confirmNewKey, bool overwrite, bool inPlace, CancellationToken cancellationToken)
    {
        using var plaintext = await DecryptToMemoryAsync(source, sourceFormat, unwrapper, requiredContext, cancellationToken).ConfigureAwait(false);
        var context = target == EnvelopeFileFormat.Legacy ? EncryptionContext.Empty : plaintext.Context;
        if (target == EnvelopeFileFormat.Legacy && plaintext.Context.Count > 0)
        {
            throw new EnvelopeException(EnvelopeError.ConvertContextLost,
                $"The file is bound to an encryption context ({string.Join(", ", plaintext.Context.Keys)}), which the legacy format cannot hold; "
                + "converting would drop it. Decrypt and encrypt it again if that is intended.");
        }

        using var lease = await acquireKey(context, plaintext.Length, cancellationToken).ConfigureAwait(false);
        var newKey = lease.Key;
        byte[] ciphertext = await EncryptInMemoryAsync(plaintext, target, newKey, context, sdkArns, cancellationToken).ConfigureAwait(false);
        // The output must give back exactly the plaintext before it is written, above all before it replaces the source.
        await VerifyAsync(ciphertext, target, newKey, plaintext.Memory, cancellationToken).ConfigureAwait(false);
        if (inPlace && confirmNewKey is not null) await confirmNewKey(newKey, context, cancellationToken).ConfigureAwait(false);

        Func<FileStream, Task> write = output => output.WriteAsync(ciphertext, cancellationToken).AsTask();
        long outputLength = inPlace
            ? await EnvelopeFileOperations.ReplaceFileAtomicallyAsync(source, write, cancellationToken).ConfigureAwait(false)
            : await EnvelopeFileOperations.WriteFileAtomicallyAsync(source, destination, overwrite, write, cancellationToken).ConfigureAwait(false);
        return new EnvelopeConvertResult(source, destination, sourceFormat, target, plaintext.Length, outputLength, plaintext.KeyId, plaintext.UnwrappedFrom, newKey.WrappedKeys, inPlace);
    }

    /// <summary>
    /// A decrypted, authenticated plaintext in a pinned buffer that <see cref="Dispose"/> wipes. It grows with the
    /// plaintext its reader actually writes (an EKMS frame only once it authenticated), up to a capacity, never from
    /// a file's length up front: a 1 GiB file holding only a header cost 1 GiB before it was parsed.
    /// </summary>
    private sealed class PlaintextBuffer : Stream
    {
        private const int InitialSize = 64 * 1024;
        private readonly long _capacity;
        private byte[] _buffer = [];
        private int _length;

        public PlaintextBuffer(long capacity) => _capacity = capacity;

        /// <summary>Where a reader writes the plaintext; every buffer it outgrows is wiped, so no copy is left behind.</summary>
        public Stream Stream => this;
        public ReadOnlySpan<byte> Span => _buffer.AsSpan(0, _length);
        public ReadOnlyMemory<byte> Memory => _buffer.AsMemory(0, _length);
        public EncryptionContext Context { get; set; } = EncryptionContext.Empty;
        public string? KeyId { get; set; }
        public WrappedDataKey? UnwrappedFrom { get; set; }

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => _length;
        public override long Position { get => _length; set => throw new NotSupportedException(); }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> data)
        {
            long needed = (long)_length + data.Length;
            if (needed > _capacity)
                throw new EnvelopeException(EnvelopeError.ConvertTooLarge,
                    $"The plaintext is larger than {_capacity:N0} bytes; conversions are done in memory and handle at most {MaxPlaintextLength / (1 << 20)} MiB.");
            if (needed > _buffer.Length)
            {
                var next = GC.AllocateUninitializedArray<byte>((int)Math.Min(_capacity, Math.Max(needed, Math.Max(2L * _buffer.Length, InitialSize))), pinned: true);
                _buffer.AsSpan(0, _length).CopyTo(next);
                CryptographicOperations.ZeroMemory(_buffer);
                _buffer = next;
            }
            data.CopyTo(_buffer.AsSpan(_length));
            _length += data.Length;
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
        {
            cancellationToken.ThrowIfCancellationRequested();
            Write(data.Span);
            return ValueTask.CompletedTask;
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
            => WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            CryptographicOperations.ZeroMemory(_buffer);
            _buffer = [];
            _length = 0;
            base.Dispose(disposing);
        }
    }

    private static async Task<PlaintextBuffer> DecryptToMemoryAsync(string source, EnvelopeFileFormat format, IDataKeyProvider unwrapper,
        EncryptionContext required, CancellationToken cancellationToken)
    {
        await using var input = EnvelopeFileOperations.OpenSource(source);
        long fileLength = input.Length;
        // The ciphertext is never shorter than its plaintext, so the file length bounds the buffer before any KMS call.
        if (fileLength > MaxPlaintextLength + (1 << 20))
            throw new EnvelopeException(EnvelopeError.ConvertTooLarge,
                $"The file is {fileLength:N0} bytes; conversions are done in memory and handle at most {MaxPlaintextLength / (1 << 20)} MiB of plaintext.");
        var buffer = new PlaintextBuffer(Math.Min(fileLength, MaxPlaintextLength));
        try
        {
            switch (format)
            {
                case EnvelopeFileFormat.Ekms:
                {
                    var header = await EnvelopeHeader.ReadAsync(input, EnvelopeReadLimits.Default, cancellationToken).ConfigureAwait(false);
                    Envelope.CheckRequiredContext(header, required);
                    using var dataKey = await Envelope.UnwrapAsync(header, unwrapper, cancellationToken).ConfigureAwait(false);
                    var result = await Envelope.DecryptBodyAsync(header, input, buffer.Stream, dataKey, null, null, cancellationToken).ConfigureAwait(false);
                    (buffer.Context, buffer.KeyId, buffer.UnwrappedFrom) = (header.EncryptionContext, result.KeyId, result.UnwrappedFrom);
                    break;
                }
                case EnvelopeFileFormat.AlibabaSdk or EnvelopeFileFormat.AlibabaSdkStream:
                {
                    var header = await AlibabaSdkEnvelope.ReadHeaderAsync(input, cancellationToken).ConfigureAwait(false);
                    AlibabaSdkEnvelope.CheckRequiredContext(header, required);
                    using var dataKey = await AlibabaSdkEnvelope.UnwrapAsync(header, unwrapper, cancellationToken).ConfigureAwait(false);
                    var result = await AlibabaSdkEnvelope.DecryptBodyAsync(header, input, buffer.Stream, dataKey, null, cancellationToken).ConfigureAwait(false);
                    (buffer.Context, buffer.KeyId, buffer.UnwrappedFrom) = (header.EncryptionContext, result.KeyId, result.UnwrappedFrom);
                    break;
                }
                case EnvelopeFileFormat.Legacy:
                {
                    if (required.Count > 0)
                        throw new EnvelopeException(EnvelopeError.ContextMismatch, "This is a legacy (documentation sample) file, which has no encryption context; the required context cannot match.");
                    if (fileLength > LegacyEnvelope.MaxFileSize)
                        throw new EnvelopeException(EnvelopeError.LegacyInvalid, $"The file is larger than {LegacyEnvelope.MaxFileSize / (1024 * 1024)} MiB, the most the legacy format handles.");
                    var envelope = await LegacyEnvelope.ReadAsync(input, cancellationToken).ConfigureAwait(false);
                    using var dataKey = await unwrapper.DecryptDataKeyAsync([envelope.WrappedKey], EncryptionContext.Empty, cancellationToken).ConfigureAwait(false);
                    byte[] decrypted = envelope.Decrypt(dataKey);
                    try { buffer.Stream.Write(decrypted); }
                    finally { CryptographicOperations.ZeroMemory(decrypted); }
                    (buffer.KeyId, buffer.UnwrappedFrom) = (dataKey.KeyId, dataKey.UnwrappedFrom);
                    break;
                }
                default:
                    throw new EnvelopeException(EnvelopeError.NotEnvelope, "The file is not an envelope file of a format this module reads.");
            }
            return buffer;
        }
        catch
        {
            buffer.Dispose();
            throw;
        }
    }

    private static async Task<byte[]> EncryptInMemoryAsync(PlaintextBuffer plaintext, EnvelopeFileFormat target, DataKey key, EncryptionContext context,
        IReadOnlyList<string>? sdkArns, CancellationToken cancellationToken)
    {
        if (target == EnvelopeFileFormat.Legacy)
        {
            if (plaintext.Length > LegacyEnvelope.MaxFileSize)
                throw new EnvelopeException(EnvelopeError.ConvertTooLarge, $"The plaintext is larger than {LegacyEnvelope.MaxFileSize / (1024 * 1024)} MiB, the most the legacy format handles.");
            return LegacyEnvelope.Encrypt(key, plaintext.Span);
        }
        using var source = new ReadOnlyMemoryStream(plaintext.Memory);
        using var output = new MemoryStream();
        if (target == EnvelopeFileFormat.Ekms)
            await Envelope.EncryptAsync(source, output, key, context, null, null, cancellationToken).ConfigureAwait(false);
        else
            await AlibabaSdkEnvelope.EncryptAsync(source, output, key, sdkArns!, context,
                target == EnvelopeFileFormat.AlibabaSdk ? AlibabaSdkLayout.Asn1 : AlibabaSdkLayout.Stream, null, cancellationToken).ConfigureAwait(false);
        return output.ToArray();
    }

    private static async Task VerifyAsync(byte[] ciphertext, EnvelopeFileFormat target, DataKey key, ReadOnlyMemory<byte> expected, CancellationToken cancellationToken)
    {
        byte[] copy = GC.AllocateUninitializedArray<byte>(expected.Length, pinned: true);
        try
        {
            var comparer = new MemoryStream(copy, 0, copy.Length, writable: true);
            switch (target)
            {
                case EnvelopeFileFormat.Legacy:
                    byte[] decrypted = LegacyEnvelope.Parse(ciphertext).Decrypt(key);
                    try { comparer.Write(decrypted); }
                    finally { CryptographicOperations.ZeroMemory(decrypted); }
                    break;
                case EnvelopeFileFormat.Ekms:
                {
                    using var input = new MemoryStream(ciphertext, writable: false);
                    var header = await EnvelopeHeader.ReadAsync(input, EnvelopeReadLimits.Default, cancellationToken).ConfigureAwait(false);
                    await Envelope.DecryptBodyAsync(header, input, comparer, key, null, null, cancellationToken).ConfigureAwait(false);
                    break;
                }
                default:
                {
                    using var input = new MemoryStream(ciphertext, writable: false);
                    var header = await AlibabaSdkEnvelope.ReadHeaderAsync(input, cancellationToken).ConfigureAwait(false);
                    await AlibabaSdkEnvelope.DecryptBodyAsync(header, input, comparer, key, null, cancellationToken).ConfigureAwait(false);
                    break;
                }
            }
            if (comparer.Position != copy.Length || !CryptographicOperations.FixedTimeEquals(copy, expected.Span))
                throw new CryptographicException("The converted file does not decrypt to the original plaintext; nothing was written.");
        }
        finally
        {
            CryptographicOperations.ZeroMemory(copy);
        }
    }

    /// <summary>A read-only, seekable view of memory (no copy of the plaintext is made to read it).</summary>
    private sealed class ReadOnlyMemoryStream(ReadOnlyMemory<byte> memory) : Stream
    {
        private int _position;
        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;
        public override long Length => memory.Length;
        public override long Position { get => _position; set => _position = (int)Math.Clamp(value, 0, memory.Length); }
        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
        public override int Read(Span<byte> buffer)
        {
            int n = Math.Min(buffer.Length, memory.Length - _position);
            memory.Span.Slice(_position, n).CopyTo(buffer);
            _position += n;
            return n;
        }
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.FromResult(Read(buffer.Span));
        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => Task.FromResult(Read(buffer.AsSpan(offset, count)));
        public override long Seek(long offset, SeekOrigin origin)
        {
            Position = origin switch { SeekOrigin.Begin => offset, SeekOrigin.Current => _position + offset, _ => memory.Length + offset };
            return _position;
        }
        public override void Flush() { }
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
