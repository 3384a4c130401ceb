using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using EnvelopeKms.Crypto;
using EnvelopeKms.Keys;

namespace EnvelopeKms.Format;

/// <summary>Caps a reader applies to an untrusted header before allocating or calling KMS.</summary>
public sealed record EnvelopeReadLimits
{
    public static EnvelopeReadLimits Default { get; } = new();

    /// <summary>Most wrapped-key entries accepted (1..16).</summary>
    public int MaxWrappedKeys { get; init; } = EnvelopeFormat.DefaultMaxWrappedKeys;

    /// <summary>Largest frame length accepted (the reader allocates buffers of this size).</summary>
    public int MaxFrameLength { get; init; } = EnvelopeFormat.MaxFrameLength;
}

/// <summary>
/// An EKMS header (docs/format.md §3 for v1, §12 for v2). Parsed headers are unauthenticated until a data key
/// verifies the commitment and a tag; <see cref="Authenticate"/> does both. A v2 header holds two slots; until it
/// is authenticated, <see cref="EncryptionContext"/> and <see cref="WrappedKeys"/> are those of the first
/// candidate slot, afterwards those of the slot that verified (<see cref="ActiveSlot"/>).
/// </summary>
public sealed partial class EnvelopeHeader
{
    private static readonly UTF8Encoding StrictUtf8 = new(false, true);
    private readonly byte[] _bytes;
    private readonly EncryptionContext? _context;
    private readonly IReadOnlyList<WrappedDataKey>? _wrappedKeys;

    private EnvelopeHeader(byte[] bytes, ushort suiteId, int frameLength, EncryptionContext context, IReadOnlyList<WrappedDataKey> wrappedKeys)
    {
        _bytes = bytes;
        Version = EnvelopeFormat.Version1;
        SuiteId = suiteId;
        FrameLength = frameLength;
        _context = context;
        _wrappedKeys = wrappedKeys;
    }

    /// <summary>The format version: 1 or 2.</summary>
    public byte Version { get; }
    public ushort SuiteId { get; }
    public int FrameLength { get; }
    public EncryptionContext EncryptionContext => _context ?? CurrentSlot.EncryptionContext!;
    public IReadOnlyList<WrappedDataKey> WrappedKeys => _wrappedKeys ?? CurrentSlot.WrappedKeys;

    /// <summary>Total header length in bytes (v2: preamble and both slots): the body starts here.</summary>
    public int Length => _bytes.Length;

    public ReadOnlySpan<byte> MessageId => _bytes.AsSpan(16, EnvelopeFormat.MessageIdSize);

    /// <summary>The serialized header (v2: the preamble and both slots as read or written).</summary>
    public ReadOnlySpan<byte> Bytes => _bytes;

    /// <summary>Plaintext length of a file whose total length is <paramref name="fileLength"/>, or null if no valid file has that length.</summary>
    public long? GetPlaintextLength(long fileLength) => FrameLayout.PlaintextLength(fileLength - Length, FrameLength);

    // v1 only: the commitment and the tag sit at the end of the header.
    private ReadOnlySpan<byte> V1Commitment => _bytes.AsSpan(_bytes.Length - EnvelopeFormat.TagSize - EnvelopeFormat.CommitmentSize, EnvelopeFormat.CommitmentSize);
    private ReadOnlySpan<byte> V1Tag => _bytes.AsSpan(_bytes.Length - EnvelopeFormat.TagSize);
    private ReadOnlySpan<byte> V1AuthenticatedBytes => _bytes.AsSpan(0, _bytes.Length - EnvelopeFormat.TagSize);

    /// <summary>
    /// Builds and seals a header: derives the file key (returned in <paramref name="fileKey"/>, which the caller wipes),
    /// writes the commitment and the header tag. Version 2 gets both slots, identical, with generation 1.
    /// </summary>
    internal static EnvelopeHeader Create(DataKey dataKey, EncryptionContext context, int frameLength, ReadOnlySpan<byte> messageId, Span<byte> fileKey,
        byte version = EnvelopeFormat.DefaultVersion, ReadOnlySpan<byte> headerNonce = default)
    {
        if (frameLength < EnvelopeFormat.MinFrameLength || frameLength > EnvelopeFormat.MaxFrameLength)
            throw new ArgumentOutOfRangeException(nameof(frameLength), $"Frame length must be between {EnvelopeFormat.MinFrameLength} and {EnvelopeFormat.MaxFrameLength}.");
        RequireSuiteKeyLength(dataKey);
        var keys = dataKey.WrappedKeys;
        CheckWrappedKeys(keys);
        if (version == EnvelopeFormat.Version2)
            return CreateV2(dataKey, context, frameLength, messageId, fileKey, headerNonce);
        if (version != EnvelopeFormat.Version1)
            throw new ArgumentOutOfRangeException(nameof(version), "EnvelopeKms writes format versions 1 and 2.");

        int length = EnvelopeFormat.FixedPrefixSize + KeyListLength(context, keys) + EnvelopeFormat.CommitmentSize + EnvelopeFormat.TagSize;
        var bytes = new byte[length];
        var span = bytes.AsSpan();
        WriteFixedPrefix(span, EnvelopeFormat.Version1, frameLength, messageId);
        int offset = EnvelopeFormat.FixedPrefixSize;
        offset += WriteKeyList(span[offset..], context, keys);
        KeySchedule.Derive(dataKey.Plaintext, messageId, EnvelopeFormat.SuiteAes256GcmHkdfSha512Commit, fileKey, span.Slice(offset, EnvelopeFormat.CommitmentSize));
        offset += EnvelopeFormat.CommitmentSize;
        using (var cipher = FrameCipher.Create(fileKey))
        {
            cipher.Encrypt(V1HeaderNonce, ReadOnlySpan<byte>.Empty, Span<byte>.Empty, span.Slice(offset, EnvelopeFormat.TagSize), span[..offset]);
        }
        return new EnvelopeHeader(bytes, EnvelopeFormat.SuiteAes256GcmHkdfSha512Commit, frameLength, context, keys);
    }

    /// <summary>Nonce 0 is the v1 header tag's; frames use 1..2^32.</summary>
    private static ReadOnlySpan<byte> V1HeaderNonce => new byte[FrameCipher.NonceSize];

    internal static void CheckWrappedKeys(IReadOnlyList<WrappedDataKey> keys)
    {
        if (keys.Count < 1 || keys.Count > EnvelopeFormat.MaxWrappedKeysHardLimit)
            throw new ArgumentException($"A file carries 1 to {EnvelopeFormat.MaxWrappedKeysHardLimit} wrapped data keys; got {keys.Count}.");
        foreach (var key in keys) EntryLength(key);
    }

    private static void WriteFixedPrefix(Span<byte> span, byte version, int frameLength, ReadOnlySpan<byte> messageId)
    {
        EnvelopeFormat.Magic.CopyTo(span);
        span[8] = version;
        BinaryPrimitives.WriteUInt16BigEndian(span[9..], EnvelopeFormat.SuiteAes256GcmHkdfSha512Commit);
        span[11] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(span[12..], (uint)frameLength);
        messageId.CopyTo(span[16..48]);
    }

    /// <summary>Bytes of <c>u16 L || context || u16 n || entries</c> (the same in v1 and in a v2 slot).</summary>
    internal static int KeyListLength(EncryptionContext context, IReadOnlyList<WrappedDataKey> keys)
    {
        int length = 2 + context.GetEncodedLength() + 2;
        foreach (var key in keys) length += EntryLength(key);
        return length;
    }

    private static int EntryLength(WrappedDataKey key)
        => 10 + CheckedLength(key.ProviderId, EnvelopeFormat.MaxProviderIdLength, "provider id", allowEmpty: false)
            + CheckedLength(key.KeyId, EnvelopeFormat.MaxKeyIdLength, "key id", allowEmpty: false)
            + CheckedLength(key.KeyVersionId, EnvelopeFormat.MaxKeyVersionLength, "key version id", allowEmpty: true)
            + CheckedLength(key.Region, EnvelopeFormat.MaxRegionLength, "region", allowEmpty: true)
            + CheckedLength(key.CiphertextBlob, EnvelopeFormat.MaxCiphertextBlobLength, "ciphertext blob", allowEmpty: false);

    private static int WriteKeyList(Span<byte> span, EncryptionContext context, IReadOnlyList<WrappedDataKey> keys)
    {
        int ecLength = context.GetEncodedLength();
        int offset = 0;
        BinaryPrimitives.WriteUInt16BigEndian(span[offset..], (ushort)ecLength);
        offset += 2;
        context.Encode(span.Slice(offset, ecLength));
        offset += ecLength;
        BinaryPrimitives.WriteUInt16BigEndian(span[offset..], (ushort)keys.Count);
        offset += 2;
        foreach (var key in keys)
        {
            offset += WriteString(span[offset..], key.ProviderId);
            offset += WriteString(span[offset..], key.KeyId);
            offset += WriteString(span[offset..], key.KeyVersionId);
            offset += WriteString(span[offset..], key.Region);
            offset += WriteString(span[offset..], key.CiphertextBlob);
        }
        return offset;
    }

    private static int CheckedLength(string value, int max, string what, bool allowEmpty)
    {
        ArgumentNullException.ThrowIfNull(value, what);
        int n = Encoding.UTF8.GetByteCount(value);
        if (n > max) throw new ArgumentException($"The wrapped key's {what} is longer than {max} bytes.");
        if (n == 0 && !allowEmpty) throw new ArgumentException($"The wrapped key's {what} is empty.");
        return n;
    }

    private static int WriteString(Span<byte> destination, string value)
    {
        int n = Encoding.UTF8.GetBytes(value, destination[2..]);
        BinaryPrimitives.WriteUInt16BigEndian(destination, (ushort)n);
        return 2 + n;
    }

    /// <summary>
    /// Verifies the commitment (constant time) and the header tag with a candidate data key and derives the file key
    /// into <paramref name="fileKey"/> (wiped on failure; the caller wipes it on success). For v2, once a slot has
    /// verified only that slot is checked again; before, the candidates are tried in order and the first that
    /// verifies becomes <see cref="ActiveSlot"/>.
    /// </summary>
    internal void Authenticate(DataKey dataKey, Span<byte> fileKey)
    {
        if (Version == EnvelopeFormat.Version2)
        {
            AuthenticateV2(dataKey, fileKey);
            return;
        }
        DeriveAndCheckCommitment(dataKey, V1Commitment, fileKey);
        using var cipher = FrameCipher.Create(fileKey);
        if (!cipher.TryDecrypt(V1HeaderNonce, ReadOnlySpan<byte>.Empty, V1Tag, Span<byte>.Empty, V1AuthenticatedBytes))
        {
            CryptographicOperations.ZeroMemory(fileKey);
            throw HeaderTampered();
        }
    }

    private static EnvelopeException HeaderTampered()
        => new(EnvelopeError.HeaderTampered, "The file header failed authentication: it was modified after encryption.");

    /// <summary>Derives the file key and checks the commitment in constant time (the file key is wiped on a mismatch).</summary>
    private void DeriveAndCheckCommitment(DataKey dataKey, ReadOnlySpan<byte> expected, Span<byte> fileKey)
    {
        RequireSuiteKeyLength(dataKey); // every v1 and v2 slot check comes here
        Span<byte> commitment = stackalloc byte[EnvelopeFormat.CommitmentSize];
        KeySchedule.Derive(dataKey.Plaintext, MessageId, SuiteId, fileKey, commitment);
        bool committed = CryptographicOperations.FixedTimeEquals(commitment, expected);
        CryptographicOperations.ZeroMemory(commitment);
        if (!committed)
        {
            CryptographicOperations.ZeroMemory(fileKey);
            throw new EnvelopeException(EnvelopeError.KeyCommitmentMismatch,
                "The data key does not match this file's key commitment: the file was encrypted with another key, or its wrapped key was replaced.");
        }
    }

    /// <summary>Suite 0x0001 takes 32-byte data keys only (format §5); a 16-byte key (kept for other formats) is refused.</summary>
    private static void RequireSuiteKeyLength(DataKey dataKey)
    {
        if (dataKey.Length != DataKey.KeyLength)
            throw new KeyProviderException(KeyProviderError.InvalidDataKey, $"EKMS files need a {DataKey.KeyLength}-byte data key; this one has {dataKey.Length} bytes.");
    }

    /// <summary>Reads and parses a header from the current position, enforcing every cap before allocating.</summary>
    public static async Task<EnvelopeHeader> ReadAsync(Stream input, EnvelopeReadLimits? limits = null, CancellationToken cancellationToken = default)
    {
        limits ??= EnvelopeReadLimits.Default;
        var reader = new HeaderReader(input, cancellationToken);

        var prefix = await reader.ReadAsync(EnvelopeFormat.FixedPrefixSize, allowShort: true).ConfigureAwait(false);
        CheckMagic(prefix.Span);
        var fixedPart = prefix.Span;
        byte version = fixedPart[8];
        if (version != EnvelopeFormat.Version1 && version != EnvelopeFormat.Version2)
            throw new EnvelopeException(EnvelopeError.UnsupportedVersion, $"EKMS format version {version} is not supported by this version of EnvelopeKms (it reads versions 1 and 2).");
        ushort suite = BinaryPrimitives.ReadUInt16BigEndian(fixedPart[9..]);
        if (suite != EnvelopeFormat.SuiteAes256GcmHkdfSha512Commit)
            throw new EnvelopeException(EnvelopeError.UnsupportedSuite, $"Algorithm suite 0x{suite:X4} is not supported (this version knows suite 0x0001).");
        if (fixedPart[11] != 0)
            throw new EnvelopeException(EnvelopeError.MalformedHeader, "The header's reserved byte is not zero.");
        uint frameLength = BinaryPrimitives.ReadUInt32BigEndian(fixedPart[12..]);
        if (frameLength < EnvelopeFormat.MinFrameLength || frameLength > EnvelopeFormat.MaxFrameLength)
            throw new EnvelopeException(EnvelopeError.MalformedHeader, $"The header's frame length {frameLength} is outside {EnvelopeFormat.MinFrameLength}..{EnvelopeFormat.MaxFrameLength}.");
        if (frameLength > limits.MaxFrameLength)
            throw new EnvelopeException(EnvelopeError.LimitExceeded, $"The header's frame length {frameLength} exceeds the configured limit of {limits.MaxFrameLength}.");
        if (version == EnvelopeFormat.Version2)
            return await ReadV2Async(reader, suite, (int)frameLength, limits).ConfigureAwait(false);

        int ecLength = BinaryPrimitives.ReadUInt16BigEndian((await reader.ReadAsync(2).ConfigureAwait(false)).Span);
        var ecBytes = await reader.ReadAsync(ecLength).ConfigureAwait(false);
        if (!EncryptionContext.TryDecode(ecBytes.Span, out var context, out var problem))
            throw new EnvelopeException(EnvelopeError.MalformedHeader, $"The header's encryption context is invalid: {problem}.");

        int count = BinaryPrimitives.ReadUInt16BigEndian((await reader.ReadAsync(2).ConfigureAwait(false)).Span);
        if (count == 0)
            throw new EnvelopeException(EnvelopeError.MalformedHeader, "The header has no wrapped data key.");
        int maxKeys = Math.Clamp(limits.MaxWrappedKeys, 1, EnvelopeFormat.MaxWrappedKeysHardLimit);
        if (count > maxKeys)
            throw new EnvelopeException(EnvelopeError.LimitExceeded, $"The header has {count} wrapped data keys; at most {maxKeys} are accepted.");
        var keys = new WrappedDataKey[count];
        for (int i = 0; i < count; i++)
        {
            string provider = await reader.ReadStringAsync(EnvelopeFormat.MaxProviderIdLength, "provider id", allowEmpty: false).ConfigureAwait(false);
            string keyId = await reader.ReadStringAsync(EnvelopeFormat.MaxKeyIdLength, "key id", allowEmpty: false).ConfigureAwait(false);
            string version2 = await reader.ReadStringAsync(EnvelopeFormat.MaxKeyVersionLength, "key version id", allowEmpty: true).ConfigureAwait(false);
            string region = await reader.ReadStringAsync(EnvelopeFormat.MaxRegionLength, "region", allowEmpty: true).ConfigureAwait(false);
            string blob = await reader.ReadStringAsync(EnvelopeFormat.MaxCiphertextBlobLength, "ciphertext blob", allowEmpty: false).ConfigureAwait(false);
            keys[i] = new WrappedDataKey(provider, keyId, version2, region, blob);
        }
        await reader.ReadAsync(EnvelopeFormat.CommitmentSize + EnvelopeFormat.TagSize).ConfigureAwait(false);
        return new EnvelopeHeader(reader.ToArray(), suite, (int)frameLength, context!, keys);
    }

    private static void CheckMagic(ReadOnlySpan<byte> prefix)
    {
        var magic = EnvelopeFormat.Magic;
        if (prefix.Length >= magic.Length && prefix[..magic.Length].SequenceEqual(magic))
        {
            if (prefix.Length < EnvelopeFormat.FixedPrefixSize)
                throw new EnvelopeException(EnvelopeError.Truncated, "The file ends inside its header.");
            return;
        }
        throw Diagnose(prefix);
    }

    /// <summary>Explains why bytes that are not an EKMS header are not one.</summary>
    internal static EnvelopeException Diagnose(ReadOnlySpan<byte> prefix)
    {
        ReadOnlySpan<byte> crlfToLf = [0x89, 0x45, 0x4B, 0x4D, 0x0A, 0x1A, 0x0A];
        ReadOnlySpan<byte> lfToCrlf = [0x89, 0x45, 0x4B, 0x4D, 0x0D, 0x0D, 0x0A, 0x1A];
        if (prefix.StartsWith(crlfToLf) || prefix.StartsWith(lfToCrlf))
            return new EnvelopeException(EnvelopeError.TextModeCorrupted,
                "This is an EKMS file whose line endings were converted by a text-mode transfer (FTP ASCII mode, git autocrlf, a text pipe); "
                + "it cannot be decrypted. Copy the original in binary mode.");
        if (prefix.StartsWith("iUVLTQ0K"u8))
            return new EnvelopeException(EnvelopeError.Base64Encoded,
                "This is an EKMS file encoded as base64 text. Decode it to bytes first (for example [Convert]::FromBase64String).");
        if (prefix.Length > 0 && EnvelopeFormat.Magic.StartsWith(prefix))
            return new EnvelopeException(EnvelopeError.Truncated, "The file ends inside its header.");
        return new EnvelopeException(EnvelopeError.NotEnvelope, "The file is not an EnvelopeKms (EKMS) file.");
    }

    /// <summary>Reads header fields from a stream, keeping every byte for the tag and never reading past the header.</summary>
    internal sealed class HeaderReader(Stream input, CancellationToken cancellationToken)
    {
        private byte[] _buffer = new byte[256];
        private int _length;

        public async ValueTask<ReadOnlyMemory<byte>> ReadAsync(int count, bool allowShort = false)
        {
            if (_buffer.Length - _length < count)
            {
                Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _length + count));
            }
            int start = _length;
            int read = 0;
            while (read < count)
            {
                int n = await input.ReadAsync(_buffer.AsMemory(start + read, count - read), cancellationToken).ConfigureAwait(false);
                if (n == 0) break;
                read += n;
            }
            _length += read;
            if (read < count && !allowShort)
                throw new EnvelopeException(EnvelopeError.Truncated, "The file ends inside its header.");
            return _buffer.AsMemory(start, read);
        }

        public async ValueTask<string> ReadStringAsync(int maxLength, string what, bool allowEmpty)
        {
            int n = BinaryPrimitives.ReadUInt16BigEndian((await ReadAsync(2).ConfigureAwait(false)).Span);
            if (n > maxLength)
                throw new EnvelopeException(EnvelopeError.LimitExceeded, $"A wrapped key's {what} claims {n} bytes; at most {maxLength} are accepted.");
            if (n == 0 && !allowEmpty)
                throw new EnvelopeException(EnvelopeError.MalformedHeader, $"A wrapped key's {what} is empty.");
            var bytes = await ReadAsync(n).ConfigureAwait(false);
            try { return StrictUtf8.GetString(bytes.Span); }
            catch (DecoderFallbackException)
            {
                throw new EnvelopeException(EnvelopeError.MalformedHeader, $"A wrapped key's {what} is not valid UTF-8.");
            }
        }

        public byte[] ToArray() => _buffer.AsSpan(0, _length).ToArray();

        /// <summary>
        /// Returns the bytes read so far followed by exactly <paramref name="count"/> more from the stream, in one
        /// array of the final size (v2 reads its fixed-size slot area this way: no growing buffer, no extra copy).
        /// </summary>
        public async ValueTask<byte[]> ReadRestIntoArrayAsync(int count)
        {
            var result = new byte[_length + count];
            _buffer.AsSpan(0, _length).CopyTo(result);
            int read = 0;
            while (read < count)
            {
                int n = await input.ReadAsync(result.AsMemory(_length + read, count - read), cancellationToken).ConfigureAwait(false);
                if (n == 0) throw new EnvelopeException(EnvelopeError.Truncated, "The file ends inside its header.");
                read += n;
            }
            return result;
        }
    }
}
