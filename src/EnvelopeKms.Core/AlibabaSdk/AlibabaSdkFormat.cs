using EnvelopeKms.Format;

namespace EnvelopeKms.AlibabaSdk;

/// <summary>The Alibaba Cloud Encryption SDK algorithms this build reads and writes (the SDK's algorithm ids).</summary>
public enum AlibabaSdkAlgorithm
{
    /// <summary>AES_GCM_NOPADDING_128: a 16-byte data key, 12-byte IVs, 16-byte tags.</summary>
    Aes128Gcm = 1,
    /// <summary>AES_GCM_NOPADDING_256, the SDK's default: a 32-byte data key, 12-byte IVs, 16-byte tags.</summary>
    Aes256Gcm = 2,
}

/// <summary>The two encodings of an Alibaba Cloud Encryption SDK message (docs/alibaba-sdk-format.md).</summary>
public enum AlibabaSdkLayout
{
    /// <summary>The ASN.1 (DER) message of the SDKs' <c>encrypt(byte[])</c> (Java) and <c>encrypt(bytes)</c> (Python).</summary>
    Asn1,
    /// <summary>The binary header then ciphertext and tag of the Java SDK's <c>encrypt(InputStream, OutputStream)</c>.</summary>
    Stream,
}

/// <summary>Constants, limits and recognition of Alibaba Cloud Encryption SDK messages.</summary>
public static class AlibabaSdkFormat
{
    /// <summary>The only message version the SDKs write.</summary>
    public const int Version = 1;

    /// <summary>Bytes of the header IV and of the body IV (GCM).</summary>
    public const int IvSize = 12;

    /// <summary>Bytes of the header tag and of the body tag (GCM).</summary>
    public const int TagSize = 16;

    /// <summary>Most encrypted data keys (one per CMK) in a message, read or written.</summary>
    public const int MaxEncryptedDataKeys = 16;

    /// <summary>Most bytes of a CMK ARN.</summary>
    public const int MaxCmkArnLength = 2048;

    /// <summary>Most bytes of an encrypted data key (the decoded CiphertextBlob; its base64 text is at most 4,096 characters).</summary>
    public const int MaxEncryptedDataKeyLength = 3072;

    /// <summary>Most characters of a CiphertextBlob's base64 text (as the stream layout stores it).</summary>
    public const int MaxCiphertextBlobTextLength = 4096;

    /// <summary>
    /// Most bytes of the serialized encryption context (count and entries with 4-byte lengths): the Java SDK
    /// serializes it into a 32,767-byte buffer and fails beyond.
    /// </summary>
    public const int MaxContextBytes = short.MaxValue;

    /// <summary>Most bytes of the DER message header (version to header tag); every field cap above fits well within it.</summary>
    public const int MaxHeadLength = 256 * 1024;

    /// <summary>
    /// Largest plaintext read or written: 2 GiB − 1 MiB (2,146,435,072 bytes). Both layouts hold the body as one GCM
    /// message, and .NET's AES-GCM is one-shot, so the whole ciphertext is processed in memory (in place, one
    /// buffer of the body's size per file in flight). The SDKs' byte APIs cannot make larger messages either.
    /// </summary>
    public const long MaxPlaintextLength = (2L << 30) - (1L << 20);

    /// <summary>The SDK's name of an algorithm id (for messages and Get-EnvelopeFileInfo).</summary>
    public static string AlgorithmName(int id) => id switch
    {
        1 => "AES_GCM_NOPADDING_128",
        2 => "AES_GCM_NOPADDING_256",
        3 => "AES_CBC_NOPADDING_128",
        4 => "AES_CBC_NOPADDING_256",
        5 => "AES_CBC_PKCS5_128",
        6 => "AES_CBC_PKCS5_256",
        7 => "AES_CTR_NOPADDING_128",
        8 => "AES_CTR_NOPADDING_256",
        9 => "SM4_GCM_NOPADDING_128",
        10 => "SM4_CBC_NOPADDING_128",
        11 => "SM4_CBC_PKCS5_128",
        12 => "SM4_CTR_NOPADDING_128",
        _ => $"unknown algorithm {id}",
    };

    /// <summary>Data key bytes of an algorithm: 16 for AES-128-GCM, 32 for AES-256-GCM.</summary>
    public static int KeyLength(AlibabaSdkAlgorithm algorithm) => algorithm switch
    {
        AlibabaSdkAlgorithm.Aes128Gcm => 16,
        AlibabaSdkAlgorithm.Aes256Gcm => 32,
        _ => throw new ArgumentOutOfRangeException(nameof(algorithm)),
    };

    /// <summary>The algorithm whose data key has <paramref name="keyLength"/> bytes.</summary>
    public static AlibabaSdkAlgorithm AlgorithmForKeyLength(int keyLength) => keyLength switch
    {
        16 => AlibabaSdkAlgorithm.Aes128Gcm,
        32 => AlibabaSdkAlgorithm.Aes256Gcm,
        _ => throw new ArgumentOutOfRangeException(nameof(keyLength), "Encryption SDK data keys are 16 or 32 bytes."),
    };

    /// <summary>Checks an algorithm id read from a message: ids 1 and 2 are read; every other id is refused.</summary>
    internal static AlibabaSdkAlgorithm CheckAlgorithm(long id)
    {
        if (id is 1 or 2) return (AlibabaSdkAlgorithm)(int)id;
        string what = id is >= 3 and <= 12
            ? $"algorithm {id} ({AlgorithmName((int)id)}), which this build does not read: only AES_GCM_NOPADDING_128 (1) and AES_GCM_NOPADDING_256 (2) are supported"
            : $"algorithm id {id}, which no Encryption SDK defines";
        throw new EnvelopeException(EnvelopeError.SdkUnsupportedAlgorithm, $"The Alibaba Cloud Encryption SDK message uses {what}.");
    }

    /// <summary>
    /// Recognises an Encryption SDK message by its first bytes (docs/format.md §7.1), or returns null.
    /// <list type="bullet">
    /// <item>ASN.1: <c>30 L 30 L 02 01 vv 02</c> — a SEQUENCE holding a SEQUENCE whose first element is a one-byte
    /// INTEGER (the version) followed by another INTEGER (the algorithm); each L is a length octet, possibly followed
    /// by up to 8 more (the reader then insists on DER).</item>
    /// <item>Stream: <c>00 00 00 vv 00 00 00 aa</c> — the big-endian int32 version and int32 algorithm, each 1 to 255.</item>
    /// </list>
    /// Neither can be an EKMS file (it starts with 0x89), a legacy file (base64 text, where the bytes 0x00 and 0x02
    /// never occur) or the other layout.
    /// </summary>
    public static AlibabaSdkLayout? Detect(ReadOnlySpan<byte> prefix)
    {
        if (prefix.Length >= 8 && prefix[..3].IndexOfAnyExcept((byte)0) < 0 && prefix[3] != 0
            && prefix[4..7].IndexOfAnyExcept((byte)0) < 0 && prefix[7] != 0)
            return AlibabaSdkLayout.Stream;
        if (prefix.Length > 0 && prefix[0] == 0x30)
        {
            int offset = 1;
            if (!SkipDerLength(prefix, ref offset) || offset >= prefix.Length || prefix[offset] != 0x30) return null;
            offset++;
            if (!SkipDerLength(prefix, ref offset)) return null;
            if (prefix.Length - offset >= 4 && prefix[offset] == 0x02 && prefix[offset + 1] == 0x01 && prefix[offset + 3] == 0x02)
                return AlibabaSdkLayout.Asn1;
        }
        return null;
    }

    private static bool SkipDerLength(ReadOnlySpan<byte> prefix, ref int offset)
    {
        if (offset >= prefix.Length) return false;
        byte first = prefix[offset++];
        if (first < 0x80) return true;
        int n = first & 0x7F; // 0: an indefinite length; 5 to 8: a huge one. Recognised, so that the reader can say what is wrong.
        if (n > 8 || prefix.Length - offset < n) return false;
        offset += n;
        return true;
    }
}
