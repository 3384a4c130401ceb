using System.Buffers.Binary;
using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Text;
using EnvelopeKms.Crypto;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using EnvelopeKms.Cloud;

namespace EnvelopeKms.AlibabaSdk;

/// <summary>Options for reading an Encryption SDK message.</summary>
public sealed record AlibabaSdkDecryptOptions
{
    public static AlibabaSdkDecryptOptions Default { get; } = new();

    /// <summary>Pairs that must be present, with these values, in the message's encryption context.</summary>
    public EncryptionContext RequiredContext { get; init; } = EncryptionContext.Empty;
}

/// <summary>What a decryption found out about the message.</summary>
public sealed record AlibabaSdkDecryptResult(AlibabaSdkHeader Header, string? KeyId, WrappedDataKey? UnwrappedFrom, long PlaintextLength);

/// <summary>
/// Reads and writes Alibaba Cloud Encryption SDK messages (Java and Python SDKs; algorithms AES-128-GCM and
/// AES-256-GCM; the ASN.1 and the stream layout), byte-compatible with what those SDKs produce
/// (docs/alibaba-sdk-format.md). Stream to stream, so a converter never puts plaintext on disk.
/// <para>
/// The body is one GCM message, so it is processed whole in memory, in place, in one buffer (at most
/// <see cref="AlibabaSdkFormat.MaxPlaintextLength"/> bytes). Decryption writes to the output only after the header
/// tag and the body tag have both verified: nothing unauthenticated is ever released, even to a pipe.
/// </para>
/// </summary>
public static class AlibabaSdkEnvelope
{
    /// <summary>
    /// Encrypts everything <paramref name="plaintext"/> holds into one message on <paramref name="output"/>, under
    /// <paramref name="dataKey"/> (32 bytes: AES-256-GCM, algorithm 2; 16 bytes: AES-128-GCM, algorithm 1), which the
    /// caller owns and wipes. <paramref name="cmkArns"/> are the key ARNs of the data key's wrapped copies, in the
    /// same order (<c>KmsKeyArnResolver.ResolveAsync</c> finds
    /// them): the SDKs record ARNs, and take the KMS region from them.
    /// </summary>
    public static Task<AlibabaSdkHeader> EncryptAsync(Stream plaintext, Stream output, DataKey dataKey, IReadOnlyList<string> cmkArns,
        EncryptionContext context, AlibabaSdkLayout layout = AlibabaSdkLayout.Asn1, ProgressCounter? progress = null, CancellationToken cancellationToken = default)
        => EncryptAsync(plaintext, output, dataKey, cmkArns, context, layout,
            RandomNumberGenerator.GetBytes(AlibabaSdkFormat.IvSize), RandomNumberGenerator.GetBytes(AlibabaSdkFormat.IvSize), progress, cancellationToken);

    /// <summary>Encrypts with given IVs: only for known-answer tests, since an IV must never repeat under one data key.</summary>
    internal static async Task<AlibabaSdkHeader> EncryptAsync(Stream plaintext, Stream output, DataKey dataKey, IReadOnlyList<string> cmkArns,
        EncryptionContext context, AlibabaSdkLayout layout, byte[] headerIv, byte[] bodyIv, ProgressCounter? progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(plaintext);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(dataKey);
        ArgumentNullException.ThrowIfNull(context);
        var algorithm = AlibabaSdkFormat.AlgorithmForKeyLength(dataKey.Length);
        var keys = EncryptedDataKeysFor(dataKey, cmkArns);
        if (AlibabaSdkHeader.SerializeContext(context).Length > AlibabaSdkFormat.MaxContextBytes)
            throw new ArgumentException($"The encryption context serializes to more than {AlibabaSdkFormat.MaxContextBytes} bytes, the most the Encryption SDKs handle.", nameof(context));

        var authenticated = AlibabaSdkHeader.SerializeAuthenticatedFields(algorithm, context, keys);
        var headerTag = AlibabaSdkHeader.ComputeTag(dataKey.Plaintext, headerIv, authenticated);
        long? expected = plaintext.CanSeek ? Math.Max(0, plaintext.Length - plaintext.Position) : null;
        var (buffer, length) = await AlibabaSdkReader.ReadToEndAsync(plaintext, AlibabaSdkFormat.MaxPlaintextLength, expected, cancellationToken).ConfigureAwait(false);
        try
        {
            var bodyTag = new byte[AlibabaSdkFormat.TagSize];
            var contextBytes = AlibabaSdkHeader.SerializeContext(context);
            using (var cipher = FrameCipher.Create(dataKey.Plaintext))
                cipher.Encrypt(bodyIv, buffer.AsSpan(0, length), buffer.AsSpan(0, length), bodyTag, contextBytes); // in place
            var header = new AlibabaSdkHeader(layout, algorithm, keys, context, headerIv, headerTag, bodyIv, length);
            var (prefix, suffix) = layout == AlibabaSdkLayout.Asn1 ? Asn1Framing(header, length, bodyTag) : StreamFraming(header, bodyTag);
            await output.WriteAsync(prefix, cancellationToken).ConfigureAwait(false);
            await output.WriteAsync(buffer.AsMemory(0, length), cancellationToken).ConfigureAwait(false);
            await output.WriteAsync(suffix, cancellationToken).ConfigureAwait(false);
            progress?.Add(length);
            return header;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(buffer);
        }
    }

    /// <summary>
    /// Pairs the data key's wrapped copies with their ARNs: as many ARNs as copies, each a key ARN naming the key KMS
    /// reported for its copy, no ARN twice.
    /// </summary>
    internal static IReadOnlyList<AlibabaSdkEncryptedDataKey> EncryptedDataKeysFor(DataKey dataKey, IReadOnlyList<string> cmkArns)
    {
        ArgumentNullException.ThrowIfNull(cmkArns);
        var wrapped = dataKey.WrappedKeys;
        if (cmkArns.Count != wrapped.Count)
            throw new ArgumentException($"The data key has {wrapped.Count} wrapped copies but {cmkArns.Count} CMK ARNs were given.", nameof(cmkArns));
        if (wrapped.Count is 0 or > AlibabaSdkFormat.MaxEncryptedDataKeys)
            throw new ArgumentException($"An Encryption SDK message holds 1 to {AlibabaSdkFormat.MaxEncryptedDataKeys} encrypted data keys.", nameof(cmkArns));
        var keys = new List<AlibabaSdkEncryptedDataKey>(wrapped.Count);
        for (int i = 0; i < wrapped.Count; i++)
        {
            string arn = cmkArns[i];
            if (!KmsKeyArn.IsKeyArn(arn))
                throw new ArgumentException($"'{arn}' is not a key ARN (acs:kms:<region>:<uid>:key/<id>), which the Encryption SDKs require.", nameof(cmkArns));
            if (Encoding.UTF8.GetByteCount(arn) > AlibabaSdkFormat.MaxCmkArnLength)
                throw new ArgumentException($"A CMK ARN is longer than {AlibabaSdkFormat.MaxCmkArnLength} bytes.", nameof(cmkArns));
            if (wrapped[i].KeyId.Length > 0 && !SameKey(wrapped[i].KeyId, arn))
                throw new ArgumentException($"The data key's wrapped copy {i + 1} is under KMS key '{wrapped[i].KeyId}', not under '{arn}'.", nameof(cmkArns));
            byte[] blob;
            try { blob = Convert.FromBase64String(wrapped[i].CiphertextBlob); }
            catch (FormatException) { throw new ArgumentException($"The CiphertextBlob of the data key's wrapped copy {i + 1} is not base64.", nameof(dataKey)); }
            if (blob.Length is 0 or > AlibabaSdkFormat.MaxEncryptedDataKeyLength)
                throw new ArgumentException($"The CiphertextBlob of the data key's wrapped copy {i + 1} has {blob.Length} bytes; "
                    + $"1 to {AlibabaSdkFormat.MaxEncryptedDataKeyLength} fit a message.", nameof(dataKey));
            keys.Add(new AlibabaSdkEncryptedDataKey(arn, blob));
        }
        if (keys.Select(k => k.CmkArn).Distinct(StringComparer.Ordinal).Count() != keys.Count)
            throw new ArgumentException("The same CMK ARN is given twice; the Encryption SDKs keep one data key per CMK.", nameof(cmkArns));
        return keys;
    }

    private static bool SameKey(string keyId, string arn)
    {
        try { return KmsKeyReference.Parse(keyId).Matches(KmsKeyReference.Parse(arn)); }
        catch (ArgumentException) { return false; }
    }

    /// <summary>
    /// The bytes before and after the ciphertext in the ASN.1 layout: the message and body SEQUENCE headers, the DER
    /// header (sorted SETs from the BCL's DER writer), the IV, the ciphertext's OCTET STRING header; then the tag.
    /// </summary>
    private static (byte[] Prefix, byte[] Suffix) Asn1Framing(AlibabaSdkHeader header, long ciphertextLength, byte[] bodyTag)
    {
        var writer = new AsnWriter(AsnEncodingRules.DER);
        using (writer.PushSequence())
        {
            writer.WriteInteger(header.Version);
            writer.WriteInteger((int)header.Algorithm);
            using (writer.PushSetOf())
            {
                foreach (var key in header.EncryptedDataKeys)
                {
                    using (writer.PushSequence())
                    {
                        writer.WriteOctetString(key.CmkArnBytes);
                        writer.WriteOctetString(key.EncryptedDataKey);
                    }
                }
            }
            using (writer.PushSetOf())
            {
                foreach (var (key, value) in header.EncryptionContext)
                {
                    using (writer.PushSequence())
                    {
                        writer.WriteOctetString(Encoding.UTF8.GetBytes(key));
                        writer.WriteOctetString(Encoding.UTF8.GetBytes(value));
                    }
                }
            }
            writer.WriteOctetString(header.HeaderIv.Span);
            writer.WriteOctetString(header.HeaderAuthTag.Span);
        }
        var head = writer.Encode();
        var ivField = Tlv(0x04, header.BodyIv.Span);
        var ciphertextHeader = DerHeader(0x04, ciphertextLength);
        var tagField = Tlv(0x04, bodyTag);
        long bodyLength = ivField.Length + ciphertextHeader.Length + ciphertextLength + tagField.Length;
        var bodyHeader = DerHeader(0x30, bodyLength);
        long messageLength = head.Length + bodyHeader.Length + bodyLength;
        var prefix = new MemoryStream();
        prefix.Write(DerHeader(0x30, messageLength));
        prefix.Write(head);
        prefix.Write(bodyHeader);
        prefix.Write(ivField);
        prefix.Write(ciphertextHeader);
        return (prefix.ToArray(), tagField);
    }

    private static byte[] Tlv(byte tag, ReadOnlySpan<byte> value) => [.. DerHeader(tag, value.Length), .. value];

    /// <summary>A DER identifier and minimal definite length.</summary>
    internal static byte[] DerHeader(byte tag, long length)
    {
        if (length < 0x80) return [tag, (byte)length];
        int count = 0;
        for (long l = length; l > 0; l >>= 8) count++;
        var header = new byte[2 + count];
        header[0] = tag;
        header[1] = (byte)(0x80 | count);
        for (int i = 0; i < count; i++) header[2 + i] = (byte)(length >> (8 * (count - 1 - i)));
        return header;
    }

    /// <summary>
    /// The bytes before and after the ciphertext in the stream layout, as the Java SDK writes them: its
    /// <c>CipherHeader.serialize</c> (big-endian int32 version, int32 algorithm, int32 context length, context, int32
    /// key count, keys sorted by ARN as int32 length, ARN, int32 length, base64 text of the CiphertextBlob; int32 12,
    /// header IV, int32 16, header tag), then <c>DefaultEncryptHandler.writeIv</c>: the body IV's length LITTLE-endian
    /// (<c>CopyStreamUtil.intToBytes</c>, <c>0c 00 00 00</c>) and the body IV; after the ciphertext, the tag.
    /// </summary>
    private static (byte[] Prefix, byte[] Suffix) StreamFraming(AlibabaSdkHeader header, byte[] bodyTag)
    {
        var output = new MemoryStream();
        var contextBytes = header.ContextBytes;
        AlibabaSdkHeader.WriteInt32(output, header.Version);
        AlibabaSdkHeader.WriteInt32(output, (int)header.Algorithm);
        AlibabaSdkHeader.WriteBytes(output, contextBytes);
        AlibabaSdkHeader.WriteDataKeys(output, header.EncryptedDataKeys);
        AlibabaSdkHeader.WriteBytes(output, header.HeaderIv.ToArray());
        AlibabaSdkHeader.WriteBytes(output, header.HeaderAuthTag.ToArray());
        Span<byte> ivLength = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(ivLength, header.BodyIv.Length);
        output.Write(ivLength);
        output.Write(header.BodyIv.Span);
        return (output.ToArray(), bodyTag);
    }

    // ---- reading ------------------------------------------------------------------------------------------------

    /// <summary>
    /// Reads the header (either layout, recognised by content) and the body's framing, without any key and without
    /// reading the ciphertext: the stream is left at the first ciphertext byte.
    /// </summary>
    public static Task<AlibabaSdkHeader> ReadHeaderAsync(Stream input, CancellationToken cancellationToken = default)
        => AlibabaSdkReader.ReadHeaderAsync(input ?? throw new ArgumentNullException(nameof(input)), cancellationToken);

    /// <summary>
    /// Reads the header, checks the required context, asks <paramref name="keyProvider"/> to unwrap a data key (with
    /// the header's context), verifies the header tag, reads and authenticates the body, and only then writes the
    /// plaintext to <paramref name="output"/>.
    /// </summary>
    public static async Task<AlibabaSdkDecryptResult> DecryptAsync(Stream input, Stream output, IDataKeyProvider keyProvider,
        AlibabaSdkDecryptOptions? options = null, ProgressCounter? progress = null, CancellationToken cancellationToken = default)
    {
        options ??= AlibabaSdkDecryptOptions.Default;
        var header = await ReadHeaderAsync(input, cancellationToken).ConfigureAwait(false);
        CheckRequiredContext(header, options.RequiredContext);
        using var dataKey = await UnwrapAsync(header, keyProvider, cancellationToken).ConfigureAwait(false);
        return await DecryptBodyAsync(header, input, output, dataKey, progress, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Throws <see cref="EnvelopeError.ContextMismatch"/> unless every required pair is in the header.</summary>
    public static void CheckRequiredContext(AlibabaSdkHeader header, EncryptionContext required)
    {
        if (!header.EncryptionContext.Contains(required, out var missing))
        {
            throw new EnvelopeException(EnvelopeError.ContextMismatch,
                header.EncryptionContext.ContainsKey(missing!)
                    ? $"The message's encryption context has a different value for '{missing}' than required."
                    : $"The message's encryption context has no '{missing}' key, which is required.");
        }
    }

    /// <summary>
    /// Asks the key provider for a data key of the algorithm's length (with the header's context) and checks it
    /// against the header tag, which is the SDKs' only key check. If an entry unwraps to a key that does not verify
    /// it, the remaining entries are tried, so one substituted entry cannot stop an honest one from decrypting.
    /// </summary>
    public static async Task<DataKey> UnwrapAsync(AlibabaSdkHeader header, IDataKeyProvider keyProvider, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(header);
        ArgumentNullException.ThrowIfNull(keyProvider);
        var remaining = header.WrappedKeys.ToList();
        while (true)
        {
            var dataKey = await keyProvider.DecryptDataKeyAsync(remaining, header.EncryptionContext, header.KeyLength, cancellationToken).ConfigureAwait(false);
            bool verified;
            try { verified = header.VerifyTag(dataKey); }
            catch { dataKey.Dispose(); throw; }
            if (verified) return dataKey;
            dataKey.Dispose();
            if (dataKey.UnwrappedFrom is { } used && remaining.Count > 1 && remaining.Remove(used)) continue;
            throw HeaderTampered();
        }
    }

    private static EnvelopeException HeaderTampered() => new(EnvelopeError.HeaderTampered,
        "The Encryption SDK message header failed authentication: it was modified after encryption, or its data key was replaced.");

    /// <summary>
    /// After <see cref="ReadHeaderAsync"/>, with a data key in hand: verifies the header tag, reads the body into one
    /// buffer, authenticates and decrypts it in place, and only then writes the plaintext. The buffer is wiped.
    /// </summary>
    public static async Task<AlibabaSdkDecryptResult> DecryptBodyAsync(AlibabaSdkHeader header, Stream input, Stream output, DataKey dataKey,
        ProgressCounter? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(header);
        ArgumentNullException.ThrowIfNull(dataKey);
        if (!header.VerifyTag(dataKey)) throw HeaderTampered();
        var (buffer, length, tag) = await AlibabaSdkReader.ReadBodyAsync(header, input, cancellationToken).ConfigureAwait(false);
        try
        {
            bool authentic;
            using (var cipher = FrameCipher.Create(dataKey.Plaintext))
                authentic = cipher.TryDecrypt(header.BodyIv.Span, buffer.AsSpan(0, length), tag, buffer.AsSpan(0, length), header.ContextBytes); // in place
            if (!authentic)
            {
                throw new EnvelopeException(EnvelopeError.FrameTampered,
                    "The Encryption SDK message body failed authentication: the ciphertext or its tag was modified, or the message was truncated.") { FrameIndex = 1 };
            }
            await output.WriteAsync(buffer.AsMemory(0, length), cancellationToken).ConfigureAwait(false);
            progress?.Add(length);
            return new AlibabaSdkDecryptResult(header, dataKey.KeyId, dataKey.UnwrappedFrom, length);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(buffer);
        }
    }
}
