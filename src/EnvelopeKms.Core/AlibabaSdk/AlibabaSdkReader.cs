using System.Buffers.Binary;
using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Text;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;

namespace EnvelopeKms.AlibabaSdk;

/// <summary>
/// Parses Encryption SDK messages from a stream, strictly: every length is checked against its cap before anything
/// is allocated for it, the ASN.1 layout must be DER (minimal lengths and integers, primitive strings, sorted SETs,
/// nothing after the end), and entries must be in the SDKs' order without duplicates, so that a message has one
/// encoding. <see cref="ReadHeaderAsync"/> stops where the ciphertext starts; <see cref="ReadBodyAsync"/> reads the
/// rest into one buffer.
/// </summary>
internal static class AlibabaSdkReader
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
    private const int DerTagSequence = 0x30, DerTagOctetString = 0x04;

    /// <summary>Slack above the plaintext cap for everything else in a message (header, framing).</summary>
    private const long MaxOverhead = AlibabaSdkFormat.MaxHeadLength + 64;

    /// <summary>Reads the header and the body's framing; the stream is left at the first ciphertext byte.</summary>
    public static async Task<AlibabaSdkHeader> ReadHeaderAsync(Stream input, CancellationToken cancellationToken)
    {
        var reader = new SdkInput(input, cancellationToken);
        var prefix = await reader.PeekPrefixAsync().ConfigureAwait(false);
        var header = AlibabaSdkFormat.Detect(prefix) switch
        {
            AlibabaSdkLayout.Asn1 => await ReadAsn1HeaderAsync(reader).ConfigureAwait(false),
            AlibabaSdkLayout.Stream => await ReadStreamHeaderAsync(reader, (input as FileStream)?.Name).ConfigureAwait(false),
            _ => throw Errors.NotSdk(prefix.Length),
        };
        // Every valid header is longer than the peeked prefix, so the stream itself is now at the first ciphertext byte.
        if (reader.HasPeekedBytes) throw new InvalidOperationException("The message header ended inside the recognition prefix.");
        return header;
    }

    // ---- ASN.1 (DER) layout ---------------------------------------------------------------------------------------

    private static async Task<AlibabaSdkHeader> ReadAsn1HeaderAsync(SdkInput reader)
    {
        long messageLength = await ReadDerHeaderAsync(reader, DerTagSequence, "message").ConfigureAwait(false);
        if (messageLength > AlibabaSdkFormat.MaxPlaintextLength + MaxOverhead) throw Errors.TooLarge(messageLength);
        long start = reader.Consumed;
        if (reader.Remaining is long remaining)
        {
            if (remaining < messageLength) throw Errors.Truncated($"the message declares {messageLength} bytes after its first DER header, the file has {remaining}");
            if (remaining > messageLength) throw Errors.Malformed($"{remaining - messageLength} byte(s) follow the end of the DER message");
        }

        long headLength = await ReadDerHeaderAsync(reader, DerTagSequence, "header").ConfigureAwait(false);
        if (headLength > AlibabaSdkFormat.MaxHeadLength)
            throw new EnvelopeException(EnvelopeError.LimitExceeded, $"The message header declares {headLength} bytes; at most {AlibabaSdkFormat.MaxHeadLength} are read.");
        if (headLength > messageLength - (reader.Consumed - start)) throw Errors.Malformed("the header runs past the end of the message");
        var head = await reader.ReadBytesAsync((int)headLength).ConfigureAwait(false);
        var (algorithm, keys, context, headerIv, headerTag) = ParseHead(head);

        long bodyLength = await ReadDerHeaderAsync(reader, DerTagSequence, "body").ConfigureAwait(false);
        if (bodyLength != messageLength - (reader.Consumed - start)) throw Errors.Malformed("the body's length does not end it at the end of the message");
        long bodyStart = reader.Consumed;
        long ivLength = await ReadDerHeaderAsync(reader, DerTagOctetString, "body IV").ConfigureAwait(false);
        if (ivLength != AlibabaSdkFormat.IvSize) throw Errors.Malformed($"the body IV is {ivLength} bytes; GCM uses {AlibabaSdkFormat.IvSize}");
        var bodyIv = await reader.ReadBytesAsync(AlibabaSdkFormat.IvSize).ConfigureAwait(false);
        long ciphertextLength = await ReadDerHeaderAsync(reader, DerTagOctetString, "ciphertext").ConfigureAwait(false);
        if (ciphertextLength > AlibabaSdkFormat.MaxPlaintextLength) throw Errors.TooLarge(ciphertextLength);
        // What is left of the body must be exactly the 16-byte tag as an OCTET STRING (04 10 + 16 bytes).
        if (bodyLength - (reader.Consumed - bodyStart) - ciphertextLength != 2 + AlibabaSdkFormat.TagSize)
            throw Errors.Malformed($"the body does not end with a {AlibabaSdkFormat.TagSize}-byte authentication tag after the ciphertext");
        return new AlibabaSdkHeader(AlibabaSdkLayout.Asn1, algorithm, keys, context, headerIv, headerTag, bodyIv, ciphertextLength);
    }

    /// <summary>Parses the contents of the header SEQUENCE with the BCL's DER reader.</summary>
    private static (AlibabaSdkAlgorithm, IReadOnlyList<AlibabaSdkEncryptedDataKey>, EncryptionContext, byte[], byte[]) ParseHead(byte[] head)
    {
        try
        {
            var reader = new AsnReader(head, AsnEncodingRules.DER);
            if (!reader.TryReadInt32(out int version) || version != AlibabaSdkFormat.Version) throw Errors.UnsupportedVersion(version);
            if (!reader.TryReadInt32(out int algorithmId)) throw Errors.Malformed("the algorithm is not a 32-bit INTEGER");
            var algorithm = AlibabaSdkFormat.CheckAlgorithm(algorithmId);

            var keys = new List<AlibabaSdkEncryptedDataKey>();
            var keySet = reader.ReadSetOf(); // DER: the reader checks the SET OF order
            while (keySet.HasData)
            {
                if (keys.Count == AlibabaSdkFormat.MaxEncryptedDataKeys) throw Errors.TooManyKeys();
                var entry = keySet.ReadSequence();
                var arn = entry.ReadOctetString();
                var blob = entry.ReadOctetString();
                entry.ThrowIfNotEmpty();
                keys.Add(NewKey(arn, blob));
            }
            CheckKeys(keys, mustBeSorted: false);

            var pairs = new List<KeyValuePair<string, string>>();
            var contextSet = reader.ReadSetOf();
            while (contextSet.HasData)
            {
                var entry = contextSet.ReadSequence();
                var key = entry.ReadOctetString();
                var value = entry.ReadOctetString();
                entry.ThrowIfNotEmpty();
                pairs.Add(new(DecodeText(key, "an encryption context key"), DecodeText(value, "an encryption context value")));
            }
            var context = NewContext(pairs, mustBeSorted: false);

            var headerIv = reader.ReadOctetString();
            if (headerIv.Length != AlibabaSdkFormat.IvSize) throw Errors.Malformed($"the header IV is {headerIv.Length} bytes; the SDKs use {AlibabaSdkFormat.IvSize}");
            var headerTag = reader.ReadOctetString();
            if (headerTag.Length != AlibabaSdkFormat.TagSize) throw Errors.Malformed($"the header tag is {headerTag.Length} bytes; GCM tags are {AlibabaSdkFormat.TagSize}");
            reader.ThrowIfNotEmpty();
            return (algorithm, keys, context, headerIv, headerTag);
        }
        catch (AsnContentException e)
        {
            throw Errors.Malformed($"the header is not the SDK's DER structure ({e.Message})", e);
        }
    }

    /// <summary>Reads a DER identifier and length from the stream: the identifier must be <paramref name="tag"/>; the length must be definite and minimal.</summary>
    private static async Task<long> ReadDerHeaderAsync(SdkInput reader, int tag, string what)
    {
        byte identifier = await reader.ReadByteAsync().ConfigureAwait(false);
        if (identifier != tag)
            throw Errors.Malformed($"the {what} should be a DER {(tag == DerTagSequence ? "SEQUENCE (0x30)" : "OCTET STRING (0x04)")}, not 0x{identifier:x2}");
        byte first = await reader.ReadByteAsync().ConfigureAwait(false);
        if (first < 0x80) return first;
        if (first == 0x80) throw Errors.Malformed($"the {what} has an indefinite length, which DER does not allow");
        int count = first & 0x7F;
        if (count > 8) throw Errors.TooLarge(long.MaxValue);
        var bytes = await reader.ReadBytesAsync(count).ConfigureAwait(false);
        if (bytes[0] == 0) throw Errors.Malformed($"the {what}'s length is not minimal (a leading zero byte), which DER does not allow");
        ulong length = 0;
        foreach (byte b in bytes) length = (length << 8) | b;
        if (length < 0x80) throw Errors.Malformed($"the {what}'s length {length} uses the long form, which DER does not allow below 128");
        if (length > long.MaxValue) throw Errors.TooLarge(long.MaxValue);
        return (long)length;
    }

    // ---- stream layout --------------------------------------------------------------------------------------------

    /// <summary>
    /// The Java SDK's stream layout: <c>CipherHeader.serialize</c> (every int32 big-endian, <c>DataOutputStream.writeInt</c>),
    /// then the body IV's length LITTLE-endian and the IV (<c>DefaultEncryptHandler.writeIv</c>). <paramref name="fileName"/>
    /// names the file in the one error that tells the user what to do with it.
    /// </summary>
    private static async Task<AlibabaSdkHeader> ReadStreamHeaderAsync(SdkInput reader, string? fileName)
    {
        int version = await reader.ReadInt32Async().ConfigureAwait(false);
        if (version != AlibabaSdkFormat.Version) throw Errors.UnsupportedVersion(version);
        var algorithm = AlibabaSdkFormat.CheckAlgorithm(await reader.ReadInt32Async().ConfigureAwait(false));

        int contextLength = await reader.ReadInt32Async().ConfigureAwait(false);
        if (contextLength < 0) throw Errors.Malformed("the encryption context length is negative");
        if (contextLength > AlibabaSdkFormat.MaxContextBytes)
            throw new EnvelopeException(EnvelopeError.LimitExceeded, $"The encryption context declares {contextLength} bytes; the SDKs write at most {AlibabaSdkFormat.MaxContextBytes}.");
        var context = ParseContextBytes(await reader.ReadBytesAsync(contextLength).ConfigureAwait(false));

        int keyCount = await reader.ReadInt32Async().ConfigureAwait(false);
        if (keyCount <= 0) throw Errors.Malformed("the message has no encrypted data key");
        if (keyCount > AlibabaSdkFormat.MaxEncryptedDataKeys) throw Errors.TooManyKeys();
        var keys = new List<AlibabaSdkEncryptedDataKey>(keyCount);
        for (int i = 0; i < keyCount; i++)
        {
            var arn = await ReadLengthPrefixedAsync(reader, AlibabaSdkFormat.MaxCmkArnLength, "a CMK ARN").ConfigureAwait(false);
            var text = await ReadLengthPrefixedAsync(reader, AlibabaSdkFormat.MaxCiphertextBlobTextLength, "an encrypted data key").ConfigureAwait(false);
            keys.Add(NewKey(arn, DecodeCanonicalBase64(text)));
        }
        CheckKeys(keys, mustBeSorted: true);

        var headerIv = await ReadFixedAsync(reader, AlibabaSdkFormat.IvSize, "header IV").ConfigureAwait(false);
        var headerTag = await ReadFixedAsync(reader, AlibabaSdkFormat.TagSize, "header tag").ConfigureAwait(false);
        var bodyIv = await ReadBodyIvAsync(reader, fileName).ConfigureAwait(false);

        long? plaintextLength = null;
        if (reader.Remaining is long remaining)
        {
            if (remaining < AlibabaSdkFormat.TagSize) throw Errors.Truncated($"the body has {remaining} byte(s), less than its {AlibabaSdkFormat.TagSize}-byte tag");
            if (remaining - AlibabaSdkFormat.TagSize > AlibabaSdkFormat.MaxPlaintextLength) throw Errors.TooLarge(remaining);
            plaintextLength = remaining - AlibabaSdkFormat.TagSize;
        }
        return new AlibabaSdkHeader(AlibabaSdkLayout.Stream, algorithm, keys, context, headerIv, headerTag, bodyIv, plaintextLength);
    }

    private static async Task<byte[]> ReadLengthPrefixedAsync(SdkInput reader, int max, string what)
    {
        int length = await reader.ReadInt32Async().ConfigureAwait(false);
        if (length <= 0) throw Errors.Malformed($"{what} has length {length}");
        if (length > max) throw new EnvelopeException(EnvelopeError.LimitExceeded, $"The message declares {what} of {length} bytes; at most {max} are read.");
        return await reader.ReadBytesAsync(length).ConfigureAwait(false);
    }

    private static async Task<byte[]> ReadFixedAsync(SdkInput reader, int expected, string what)
    {
        int length = await reader.ReadInt32Async().ConfigureAwait(false);
        if (length != expected) throw Errors.Malformed($"the {what} is {length} bytes; the SDKs use {expected}");
        return await reader.ReadBytesAsync(expected).ConfigureAwait(false);
    }

    /// <summary>
    /// The body IV of the stream layout. Its length is the one integer of the message the Java SDK stores little-endian
    /// (<c>DefaultEncryptHandler.writeIv</c> and <c>DefaultDataKeyProvider.getCipherMaterial</c> go through
    /// <c>CopyStreamUtil.intToBytes</c> / <c>bytesToInt</c>): <c>0c 00 00 00</c>. EnvelopeKms 0.1.0 (unreleased) wrote
    /// it big-endian, <c>00 00 00 0c</c>, which no SDK reads; such a file is refused with its own message, which says
    /// how to repair it (neither tag covers these four bytes).
    /// </summary>
    private static async Task<byte[]> ReadBodyIvAsync(SdkInput reader, string? fileName)
    {
        long offset = reader.Consumed;
        var field = await reader.ReadBytesAsync(4).ConfigureAwait(false);
        int length = BinaryPrimitives.ReadInt32LittleEndian(field);
        if (length != AlibabaSdkFormat.IvSize)
        {
            if (BinaryPrimitives.ReadInt32BigEndian(field) == AlibabaSdkFormat.IvSize) throw Errors.BigEndianBodyIvLength(fileName, offset);
            throw Errors.Malformed($"the body IV length is {length} (stored little-endian, as the Java SDK writes it); the SDKs use {AlibabaSdkFormat.IvSize}");
        }
        return await reader.ReadBytesAsync(AlibabaSdkFormat.IvSize).ConfigureAwait(false);
    }

    /// <summary>Parses the SDK's serialized context (see <see cref="AlibabaSdkHeader.SerializeContext"/>), which must be canonical.</summary>
    internal static EncryptionContext ParseContextBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length == 0) return EncryptionContext.Empty;
        if (bytes.Length < 4) throw Errors.Malformed("the encryption context is shorter than its count");
        int count = BinaryPrimitives.ReadInt32BigEndian(bytes);
        // Each pair takes at least 8 bytes: the count is bounded by the bytes present before anything is allocated.
        if (count <= 0 || count > (bytes.Length - 4) / 8) throw Errors.Malformed($"the encryption context count {count} does not fit its {bytes.Length} bytes");
        var pairs = new List<KeyValuePair<string, string>>(count);
        int offset = 4;
        for (int i = 0; i < count; i++)
        {
            var key = ReadContextString(bytes, ref offset, "key");
            var value = ReadContextString(bytes, ref offset, "value");
            pairs.Add(new(key, value));
        }
        if (offset != bytes.Length) throw Errors.Malformed("the encryption context has bytes after its last pair");
        return NewContext(pairs, mustBeSorted: true);
    }

    private static string ReadContextString(ReadOnlySpan<byte> bytes, ref int offset, string what)
    {
        if (bytes.Length - offset < 4) throw Errors.Malformed($"an encryption context {what} runs past the end of the context");
        int length = BinaryPrimitives.ReadInt32BigEndian(bytes[offset..]);
        offset += 4;
        if (length < 0 || length > bytes.Length - offset) throw Errors.Malformed($"an encryption context {what} runs past the end of the context");
        var text = DecodeText(bytes.Slice(offset, length), $"an encryption context {what}");
        offset += length;
        return text;
    }

    // ---- shared checks --------------------------------------------------------------------------------------------

    private static AlibabaSdkEncryptedDataKey NewKey(ReadOnlySpan<byte> arn, ReadOnlySpan<byte> encryptedDataKey)
    {
        if (arn.Length == 0) throw Errors.Malformed("a CMK ARN is empty");
        if (arn.Length > AlibabaSdkFormat.MaxCmkArnLength)
            throw new EnvelopeException(EnvelopeError.LimitExceeded, $"A CMK ARN is {arn.Length} bytes; at most {AlibabaSdkFormat.MaxCmkArnLength} are read.");
        if (encryptedDataKey.Length == 0) throw Errors.Malformed("an encrypted data key is empty");
        if (encryptedDataKey.Length > AlibabaSdkFormat.MaxEncryptedDataKeyLength)
            throw new EnvelopeException(EnvelopeError.LimitExceeded, $"An encrypted data key is {encryptedDataKey.Length} bytes; at most {AlibabaSdkFormat.MaxEncryptedDataKeyLength} are read.");
        return new AlibabaSdkEncryptedDataKey(DecodeText(arn, "a CMK ARN"), encryptedDataKey);
    }

    /// <summary>At least one key, no ARN twice; the stream layout also stores them sorted by ARN (the ASN.1 SET order is DER's, checked by the DER reader).</summary>
    private static void CheckKeys(List<AlibabaSdkEncryptedDataKey> keys, bool mustBeSorted)
    {
        if (keys.Count == 0) throw Errors.Malformed("the message has no encrypted data key");
        var arns = keys.Select(k => k.CmkArnBytes).ToList();
        for (int i = 1; i < arns.Count; i++)
        {
            if (mustBeSorted && arns[i - 1].AsSpan().SequenceCompareTo(arns[i]) >= 0)
                throw Errors.Malformed("the encrypted data keys are not in ascending order of their ARNs, or an ARN appears twice");
        }
        if (arns.Select(Convert.ToHexString).Distinct(StringComparer.Ordinal).Count() != arns.Count)
            throw Errors.Malformed("a CMK ARN appears twice");
    }

    private static EncryptionContext NewContext(List<KeyValuePair<string, string>> pairs, bool mustBeSorted)
    {
        for (int i = 0; i < pairs.Count; i++)
        {
            if (pairs[i].Key.Length == 0) throw Errors.Malformed("an encryption context key is empty");
            if (mustBeSorted && i > 0 && EncryptionContext.CompareUtf8(pairs[i - 1].Key, pairs[i].Key) >= 0)
                throw Errors.Malformed("the encryption context is not in ascending order of its keys, or a key appears twice");
        }
        if (pairs.Select(p => p.Key).Distinct(StringComparer.Ordinal).Count() != pairs.Count)
            throw Errors.Malformed("an encryption context key appears twice");
        EncryptionContext context;
        try { context = EncryptionContext.CreateFromFile(pairs); }
        catch (ArgumentException e) { throw Errors.Malformed($"the encryption context is not valid ({e.Message})", e); }
        if (AlibabaSdkHeader.SerializeContext(context).Length > AlibabaSdkFormat.MaxContextBytes)
            throw new EnvelopeException(EnvelopeError.LimitExceeded, $"The encryption context serializes to more than {AlibabaSdkFormat.MaxContextBytes} bytes, more than the SDKs write.");
        return context;
    }

    private static string DecodeText(ReadOnlySpan<byte> bytes, string what)
    {
        try { return StrictUtf8.GetString(bytes); }
        catch (DecoderFallbackException e) { throw Errors.Malformed($"{what} is not valid UTF-8", e); }
    }

    /// <summary>The stream layout stores the CiphertextBlob's base64 text; it must be the canonical text of its bytes.</summary>
    private static byte[] DecodeCanonicalBase64(byte[] text)
    {
        string ascii = Encoding.ASCII.GetString(text);
        byte[] decoded;
        try { decoded = Convert.FromBase64String(ascii); }
        catch (FormatException e) { throw Errors.Malformed("an encrypted data key is not base64 text", e); }
        if (!string.Equals(Convert.ToBase64String(decoded), ascii, StringComparison.Ordinal) || text.Any(b => b > 0x7F))
            throw Errors.Malformed("an encrypted data key is not canonical base64 text (padding, whitespace or line breaks)");
        return decoded;
    }

    // ---- body -----------------------------------------------------------------------------------------------------

    /// <summary>
    /// Reads the ciphertext into a buffer of its own (the caller decrypts it in place and wipes it) and the tag, and
    /// checks that nothing follows. The stream must be where <see cref="ReadHeaderAsync"/> left it.
    /// </summary>
    public static async Task<(byte[] Buffer, int Length, byte[] Tag)> ReadBodyAsync(AlibabaSdkHeader header, Stream input, CancellationToken cancellationToken)
    {
        var reader = new SdkInput(input, cancellationToken);
        if (header.Layout == AlibabaSdkLayout.Asn1)
        {
            int length = checked((int)header.PlaintextLength!.Value);
            var buffer = await ReadCiphertextAsync(reader, input.CanSeek, length).ConfigureAwait(false);
            try
            {
                long tagLength = await ReadDerHeaderAsync(reader, DerTagOctetString, "authentication tag").ConfigureAwait(false);
                if (tagLength != AlibabaSdkFormat.TagSize) throw Errors.Malformed($"the body tag is {tagLength} bytes; GCM tags are {AlibabaSdkFormat.TagSize}");
                var tag = await reader.ReadBytesAsync(AlibabaSdkFormat.TagSize).ConfigureAwait(false);
                if (!await reader.AtEndAsync().ConfigureAwait(false)) throw Errors.Malformed("bytes follow the end of the DER message");
                return (buffer, length, tag);
            }
            catch
            {
                CryptographicOperations.ZeroMemory(buffer);
                throw;
            }
        }

        // Stream layout: ciphertext‖tag up to the end of the input.
        long limit = AlibabaSdkFormat.MaxPlaintextLength + AlibabaSdkFormat.TagSize;
        var (all, total) = await ReadToEndAsync(input, limit, header.PlaintextLength + AlibabaSdkFormat.TagSize, cancellationToken).ConfigureAwait(false);
        if (total < AlibabaSdkFormat.TagSize)
        {
            CryptographicOperations.ZeroMemory(all);
            throw Errors.Truncated($"the body has {total} byte(s), less than its {AlibabaSdkFormat.TagSize}-byte tag");
        }
        int ciphertextLength = total - AlibabaSdkFormat.TagSize;
        var bodyTag = all.AsSpan(ciphertextLength, AlibabaSdkFormat.TagSize).ToArray();
        return (all, ciphertextLength, bodyTag);
    }

    /// <summary>
    /// Reads the declared <paramref name="length"/> ciphertext bytes into one tracked buffer (the caller wipes it). A
    /// seekable input's length was checked against the declaration already, so the buffer is allocated at once; from
    /// a pipe it grows with the bytes that actually arrive, so a short input that declares 2 GiB costs no 2 GiB.
    /// </summary>
    private static async Task<byte[]> ReadCiphertextAsync(SdkInput reader, bool seekable, int length)
    {
        const int Chunk = 1 << 20;
        int initial = seekable ? length : Math.Min(length, Chunk);
        var buffer = SecretBuffers.Track(GC.AllocateUninitializedArray<byte>(initial));
        int filled = 0;
        try
        {
            while (filled < length)
            {
                if (filled == buffer.Length)
                {
                    var next = SecretBuffers.Track(GC.AllocateUninitializedArray<byte>((int)Math.Min(2L * buffer.Length, length)));
                    buffer.AsSpan(0, filled).CopyTo(next);
                    CryptographicOperations.ZeroMemory(buffer);
                    buffer = next;
                }
                int want = buffer.Length - filled;
                await reader.ReadExactlyAsync(buffer.AsMemory(filled, want)).ConfigureAwait(false);
                filled += want;
            }
            return buffer;
        }
        catch
        {
            CryptographicOperations.ZeroMemory(buffer);
            throw;
        }
    }

    /// <summary>
    /// Reads everything left in <paramref name="input"/> into one tracked buffer (wiped by the caller; intermediate
    /// buffers are wiped here). More than <paramref name="limit"/> bytes is <see cref="EnvelopeError.SdkMessageTooLarge"/>.
    /// </summary>
    internal static async Task<(byte[] Buffer, int Length)> ReadToEndAsync(Stream input, long limit, long? expected, CancellationToken cancellationToken)
    {
        if (expected is long known && known > limit) throw Errors.TooLarge(known);
        // One byte more than expected, so that a source that grew is noticed without a second buffer.
        long capacity = expected is long e ? Math.Min(e + 1, limit + 1) : Math.Min(1 << 20, limit + 1);
        var buffer = SecretBuffers.Track(GC.AllocateUninitializedArray<byte>((int)capacity));
        int length = 0;
        try
        {
            while (true)
            {
                if (length == buffer.Length)
                {
                    if (length > limit) throw Errors.TooLarge(length);
                    long grown = Math.Min(Math.Max((long)buffer.Length * 2, 1 << 20), limit + 1);
                    var next = SecretBuffers.Track(GC.AllocateUninitializedArray<byte>((int)grown));
                    buffer.AsSpan(0, length).CopyTo(next);
                    CryptographicOperations.ZeroMemory(buffer);
                    buffer = next;
                }
                int n = await input.ReadAsync(buffer.AsMemory(length), cancellationToken).ConfigureAwait(false);
                if (n == 0) break;
                length += n;
            }
            if (length > limit) throw Errors.TooLarge(length);
            return (buffer, length);
        }
        catch
        {
            CryptographicOperations.ZeroMemory(buffer);
            throw;
        }
    }

    // ---- input ----------------------------------------------------------------------------------------------------

    /// <summary>Exact reads with a consumed-byte count; a short read is <see cref="EnvelopeError.Truncated"/>.</summary>
    private sealed class SdkInput(Stream stream, CancellationToken cancellationToken)
    {
        private byte[]? _peeked;
        private int _peekedOffset;

        public long Consumed { get; private set; }

        /// <summary>Bytes left in a seekable input (peeked bytes included), else null.</summary>
        public long? Remaining => stream.CanSeek ? stream.Length - stream.Position + (_peeked is null ? 0 : _peeked.Length - _peekedOffset) : null;

        public bool HasPeekedBytes => _peeked is not null;

        /// <summary>Reads up to 32 bytes for recognition; they are handed out again by the reads that follow.</summary>
        public async Task<byte[]> PeekPrefixAsync()
        {
            var prefix = new byte[32];
            int n = await stream.ReadAtLeastAsync(prefix, prefix.Length, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
            _peeked = prefix[..n];
            _peekedOffset = 0;
            return _peeked;
        }

        public async Task ReadExactlyAsync(Memory<byte> destination)
        {
            int copied = 0;
            if (_peeked is not null)
            {
                copied = Math.Min(destination.Length, _peeked.Length - _peekedOffset);
                _peeked.AsSpan(_peekedOffset, copied).CopyTo(destination.Span);
                _peekedOffset += copied;
                if (_peekedOffset == _peeked.Length) _peeked = null;
            }
            int n = copied == destination.Length ? 0
                : await stream.ReadAtLeastAsync(destination[copied..], destination.Length - copied, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
            Consumed += copied + n;
            if (copied + n < destination.Length) throw Errors.Truncated("the file ends inside the message");
        }

        public async Task<byte[]> ReadBytesAsync(int count)
        {
            var bytes = new byte[count];
            await ReadExactlyAsync(bytes).ConfigureAwait(false);
            return bytes;
        }

        public async Task<byte> ReadByteAsync() => (await ReadBytesAsync(1).ConfigureAwait(false))[0];

        public async Task<int> ReadInt32Async() => BinaryPrimitives.ReadInt32BigEndian(await ReadBytesAsync(4).ConfigureAwait(false));

        public async Task<bool> AtEndAsync()
        {
            if (_peeked is not null) return false;
            var one = new byte[1];
            return await stream.ReadAsync(one, cancellationToken).ConfigureAwait(false) == 0;
        }
    }

    internal static class Errors
    {
        public static EnvelopeException Malformed(string what, Exception? inner = null)
            => new(EnvelopeError.SdkMalformed, $"The Alibaba Cloud Encryption SDK message is malformed: {what}.", inner);

        public static EnvelopeException BigEndianBodyIvLength(string? fileName, long offset)
            => new(EnvelopeError.SdkMalformed,
                $"{(fileName is null ? "The message" : $"'{fileName}'")} is an Alibaba Cloud Encryption SDK stream message as EnvelopeKms 0.1.0 wrote it, "
                + $"with the body IV length big-endian (00 00 00 0c at byte {offset}); the Encryption SDK stores it little-endian (0c 00 00 00), "
                + "so no SDK reads this file and this version refuses it. To repair it, reverse those four bytes (no tag covers them), "
                + "or decrypt it with EnvelopeKms 0.1.0 and protect it again.");

        public static EnvelopeException Truncated(string what)
            => new(EnvelopeError.Truncated, $"The Alibaba Cloud Encryption SDK message is truncated: {what}.");

        public static EnvelopeException UnsupportedVersion(int version)
            => new(EnvelopeError.UnsupportedVersion, $"The Alibaba Cloud Encryption SDK message has version {version}; only version {AlibabaSdkFormat.Version} exists.");

        public static EnvelopeException TooManyKeys()
            => new(EnvelopeError.LimitExceeded, $"The message has more than {AlibabaSdkFormat.MaxEncryptedDataKeys} encrypted data keys, the most read.");

        public static EnvelopeException TooLarge(long bytes)
            => new(EnvelopeError.SdkMessageTooLarge, (bytes == long.MaxValue ? "The message declares a length beyond any file" : $"The message holds {bytes} bytes")
                + $"; Encryption SDK messages are processed whole in memory, so at most {AlibabaSdkFormat.MaxPlaintextLength} bytes of plaintext (2 GiB − 1 MiB) are read or written.");

        public static EnvelopeException NotSdk(int length)
            => length == 0
                ? new(EnvelopeError.NotEnvelope, "The file is empty.")
                : new(EnvelopeError.NotEnvelope, "The input is not an Alibaba Cloud Encryption SDK message (neither the ASN.1 nor the stream layout).");
    }
}
