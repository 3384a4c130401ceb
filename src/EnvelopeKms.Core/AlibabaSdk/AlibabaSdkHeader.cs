using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using EnvelopeKms.Crypto;
using EnvelopeKms.Keys;
using EnvelopeKms.Cloud;

namespace EnvelopeKms.AlibabaSdk;

/// <summary>
/// One encrypted data key of an Encryption SDK message: the ARN of the CMK that wrapped it and the raw bytes of the
/// KMS <c>CiphertextBlob</c> (the ASN.1 layout stores these bytes; the stream layout and the header tag use their
/// base64 text, <see cref="CiphertextBlob"/>).
/// </summary>
public sealed class AlibabaSdkEncryptedDataKey
{
    private readonly byte[] _encryptedDataKey;

    public AlibabaSdkEncryptedDataKey(string cmkArn, ReadOnlySpan<byte> encryptedDataKey)
    {
        ArgumentException.ThrowIfNullOrEmpty(cmkArn);
        CmkArn = cmkArn;
        _encryptedDataKey = encryptedDataKey.ToArray();
        CiphertextBlob = Convert.ToBase64String(_encryptedDataKey);
    }

    /// <summary>The CMK's ARN, <c>acs:kms:&lt;region&gt;:&lt;uid&gt;:key/&lt;id&gt;</c> (the SDKs write nothing else).</summary>
    public string CmkArn { get; }

    /// <summary>The decoded CiphertextBlob.</summary>
    public ReadOnlySpan<byte> EncryptedDataKey => _encryptedDataKey;

    /// <summary>The CiphertextBlob as KMS takes it: standard base64 with padding, of <see cref="EncryptedDataKey"/>.</summary>
    public string CiphertextBlob { get; }

    internal byte[] CmkArnBytes => Encoding.UTF8.GetBytes(CmkArn);

    /// <summary>The entry a key provider unwraps: the ARN as key id, the ARN's region, no key version.</summary>
    public WrappedDataKey ToWrappedDataKey()
        => new(WrappedDataKey.AlibabaKmsProvider, CmkArn, string.Empty, KmsKeyArn.RegionOf(CmkArn) ?? string.Empty, CiphertextBlob);

    public override string ToString() => CmkArn;
}

/// <summary>
/// The header of an Encryption SDK message (both layouts), and where its body is: everything that can be read
/// without a key. <see cref="AuthenticatedFields"/> and the header tag follow the SDKs' <c>CipherHeader</c>
/// (docs/alibaba-sdk-format.md §3).
/// </summary>
public sealed class AlibabaSdkHeader
{
    internal AlibabaSdkHeader(AlibabaSdkLayout layout, AlibabaSdkAlgorithm algorithm, IReadOnlyList<AlibabaSdkEncryptedDataKey> encryptedDataKeys,
        EncryptionContext encryptionContext, byte[] headerIv, byte[] headerAuthTag, byte[] bodyIv, long? plaintextLength)
    {
        Layout = layout;
        Algorithm = algorithm;
        EncryptedDataKeys = encryptedDataKeys;
        EncryptionContext = encryptionContext;
        HeaderIv = headerIv;
        HeaderAuthTag = headerAuthTag;
        BodyIv = bodyIv;
        PlaintextLength = plaintextLength;
    }

    public AlibabaSdkLayout Layout { get; }

    /// <summary>Always <see cref="AlibabaSdkFormat.Version"/> (1): other versions are refused when read.</summary>
    public int Version => AlibabaSdkFormat.Version;

    public AlibabaSdkAlgorithm Algorithm { get; }

    /// <summary>The encrypted data keys in the order of the message.</summary>
    public IReadOnlyList<AlibabaSdkEncryptedDataKey> EncryptedDataKeys { get; }

    public EncryptionContext EncryptionContext { get; }

    public ReadOnlyMemory<byte> HeaderIv { get; }

    public ReadOnlyMemory<byte> HeaderAuthTag { get; }

    public ReadOnlyMemory<byte> BodyIv { get; }

    /// <summary>Bytes of plaintext (= ciphertext): stored in the ASN.1 layout; for the stream layout known only when the input's length is.</summary>
    public long? PlaintextLength { get; }

    /// <summary>Data key bytes the algorithm needs.</summary>
    public int KeyLength => AlibabaSdkFormat.KeyLength(Algorithm);

    /// <summary>The entries a key provider unwraps, in message order.</summary>
    public IReadOnlyList<WrappedDataKey> WrappedKeys => EncryptedDataKeys.Select(k => k.ToWrappedDataKey()).ToList();

    /// <summary>The SDK's <c>encryptionContextBytes</c>: the body's AAD, and part of <see cref="AuthenticatedFields"/>.</summary>
    internal byte[] ContextBytes => SerializeContext(EncryptionContext);

    /// <summary>
    /// The SDK's serialized encryption context: empty for an empty context, else int32 count then, for each pair in
    /// ascending order of the key's UTF-8 bytes (unsigned), int32 key length, key, int32 value length, value.
    /// All integers big-endian.
    /// </summary>
    public static byte[] SerializeContext(EncryptionContext context)
    {
        if (context.Count == 0) return [];
        var output = new MemoryStream();
        WriteInt32(output, context.Count);
        // EncryptionContext enumerates its pairs in ascending order of the keys' UTF-8 bytes already.
        foreach (var (key, value) in context)
        {
            WriteBytes(output, Encoding.UTF8.GetBytes(key));
            WriteBytes(output, Encoding.UTF8.GetBytes(value));
        }
        return output.ToArray();
    }

    /// <summary>
    /// The bytes the header tag authenticates (the SDK's <c>serializeAuthenticatedFields</c>): int32 version, int32
    /// algorithm, int32 context pair count, the serialized context (which starts with the count again when there is a
    /// context), int32 data key count, then for each data key in ascending order of its ARN's UTF-8 bytes (unsigned):
    /// int32 ARN length, ARN, int32 length of the CiphertextBlob's base64 text, that text.
    /// </summary>
    public byte[] AuthenticatedFields() => SerializeAuthenticatedFields(Algorithm, EncryptionContext, EncryptedDataKeys);

    internal static byte[] SerializeAuthenticatedFields(AlibabaSdkAlgorithm algorithm, EncryptionContext context, IReadOnlyList<AlibabaSdkEncryptedDataKey> keys)
    {
        var output = new MemoryStream();
        WriteInt32(output, AlibabaSdkFormat.Version);
        WriteInt32(output, (int)algorithm);
        WriteInt32(output, context.Count);
        output.Write(SerializeContext(context));
        WriteDataKeys(output, keys);
        return output.ToArray();
    }

    /// <summary>int32 data key count, then each key in ARN order: int32 length, ARN, int32 length, base64 CiphertextBlob text.</summary>
    internal static void WriteDataKeys(Stream output, IReadOnlyList<AlibabaSdkEncryptedDataKey> keys)
    {
        WriteInt32(output, keys.Count);
        foreach (var key in SortByArn(keys))
        {
            WriteBytes(output, key.CmkArnBytes);
            WriteBytes(output, Encoding.ASCII.GetBytes(key.CiphertextBlob));
        }
    }

    /// <summary>The data keys in ascending order of their ARNs' UTF-8 bytes, compared unsigned (the SDKs' order).</summary>
    internal static IEnumerable<AlibabaSdkEncryptedDataKey> SortByArn(IEnumerable<AlibabaSdkEncryptedDataKey> keys)
        => keys.Select(k => (Key: k, Arn: k.CmkArnBytes)).OrderBy(k => k.Arn, ByteOrder.Instance).Select(k => k.Key);

    /// <summary>The header tag: AES-GCM under the data key, IV = header IV, AAD = <see cref="AuthenticatedFields"/>, empty plaintext (a GMAC).</summary>
    internal static byte[] ComputeTag(ReadOnlySpan<byte> dataKey, ReadOnlySpan<byte> headerIv, ReadOnlySpan<byte> authenticatedFields)
    {
        var tag = new byte[AlibabaSdkFormat.TagSize];
        using var cipher = FrameCipher.Create(dataKey);
        cipher.Encrypt(headerIv, ReadOnlySpan<byte>.Empty, Span<byte>.Empty, tag, authenticatedFields);
        return tag;
    }

    /// <summary>True when <paramref name="dataKey"/> verifies the header tag (compared in constant time).</summary>
    internal bool VerifyTag(DataKey dataKey)
    {
        if (dataKey.Length != KeyLength) return false;
        var expected = ComputeTag(dataKey.Plaintext, HeaderIv.Span, AuthenticatedFields());
        return CryptographicOperations.FixedTimeEquals(expected, HeaderAuthTag.Span);
    }

    internal static void WriteInt32(Stream output, int value)
    {
        Span<byte> buffer = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(buffer, value);
        output.Write(buffer);
    }

    /// <summary>int32 length, then the bytes (the SDKs' length-prefixed field).</summary>
    internal static void WriteBytes(Stream output, byte[] bytes)
    {
        WriteInt32(output, bytes.Length);
        output.Write(bytes);
    }

    /// <summary>Unsigned lexicographic order of byte strings; a proper prefix sorts first.</summary>
    internal sealed class ByteOrder : IComparer<byte[]>
    {
        public static readonly ByteOrder Instance = new();
        public int Compare(byte[]? x, byte[]? y) => x.AsSpan().SequenceCompareTo(y);
    }
}
