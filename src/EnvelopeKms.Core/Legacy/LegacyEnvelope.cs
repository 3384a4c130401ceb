using System.Security.Cryptography;
using System.Text;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;

namespace EnvelopeKms.Legacy;

/// <summary>
/// The Alibaba Cloud KMS documentation sample's envelope format ("legacy"): a text file of four base64 lines — the
/// <c>CiphertextBlob</c>, a 16-byte EAX nonce, the ciphertext, and a 16-byte tag — encrypted with AES-EAX
/// (pycryptodome defaults, no associated data, no encryption context). Whole file in memory, so its size is capped.
/// Read by content; written only on explicit request, for scripts built from that sample.
/// </summary>
public sealed class LegacyEnvelope
{
    /// <summary>Largest legacy file read or written: it is processed whole in memory (about 3× its size).</summary>
    public const long MaxFileSize = 256L * 1024 * 1024;
    public const int NonceSize = 16;
    public const int TagSize = 16;

    private LegacyEnvelope(string ciphertextBlob, byte[] nonce, byte[] ciphertext, byte[] tag)
    {
        CiphertextBlob = ciphertextBlob;
        Nonce = nonce;
        Ciphertext = ciphertext;
        Tag = tag;
    }

    public string CiphertextBlob { get; }
    public byte[] Nonce { get; }
    public byte[] Ciphertext { get; }
    public byte[] Tag { get; }

    /// <summary>The wrapped key as an entry for a key provider; the sample records no key id, no region and no context.</summary>
    public WrappedDataKey WrappedKey => new(WrappedDataKey.AlibabaKmsProvider, string.Empty, string.Empty, string.Empty, CiphertextBlob);

    /// <summary>
    /// True when <paramref name="prefix"/> (the first bytes of a file) looks like the start of a legacy file: a base64
    /// line. Cheap sniffing for format detection; <see cref="Parse"/> decides.
    /// </summary>
    public static bool LooksLikeLegacy(ReadOnlySpan<byte> prefix)
    {
        if (prefix.Length < 4) return false;
        int i = 0;
        for (; i < prefix.Length; i++)
        {
            byte b = prefix[i];
            if (b == (byte)'\n' || b == (byte)'\r') return i >= 4;
            if (!IsBase64Char(b)) return false;
        }
        return true;
    }

    private static bool IsBase64Char(byte b) =>
        b is >= (byte)'A' and <= (byte)'Z' or >= (byte)'a' and <= (byte)'z' or >= (byte)'0' and <= (byte)'9' or (byte)'+' or (byte)'/' or (byte)'=';

    /// <summary>Parses the four lines; tolerates CRLF and trailing whitespace, nothing else.</summary>
    public static LegacyEnvelope Parse(ReadOnlySpan<byte> content)
    {
        if (content.Length > MaxFileSize) throw Invalid($"The legacy file is larger than {MaxFileSize / (1024 * 1024)} MiB, the most read whole into memory.");
        string text;
        try { text = new UTF8Encoding(false, true).GetString(content); }
        catch (DecoderFallbackException) { throw Invalid("The file is not an EKMS file and not a legacy (four base64 lines) file."); }
        var lines = text.Split('\n').Select(l => l.TrimEnd('\r', ' ', '\t')).ToList();
        while (lines.Count > 0 && lines[^1].Length == 0) lines.RemoveAt(lines.Count - 1);
        if (lines.Count != 4)
            throw Invalid($"A legacy envelope file has four base64 lines (CiphertextBlob, nonce, ciphertext, tag); this file has {lines.Count}.");
        string blob = lines[0];
        if (blob.Length == 0 || blob.Length > EnvelopeFormat.MaxCiphertextBlobLength || !TryBase64(blob, out _))
            throw Invalid("The legacy file's first line is not a base64 CiphertextBlob.");
        if (!TryBase64(lines[1], out var nonce) || nonce.Length != NonceSize)
            throw Invalid($"The legacy file's second line is not a base64 {NonceSize}-byte nonce.");
        if (!TryBase64(lines[2], out var ciphertext))
            throw Invalid("The legacy file's third line is not base64 ciphertext.");
        if (!TryBase64(lines[3], out var tag) || tag.Length != TagSize)
            throw Invalid($"The legacy file's fourth line is not a base64 {TagSize}-byte tag.");
        return new LegacyEnvelope(blob, nonce, ciphertext, tag);
    }

    private static bool TryBase64(string s, out byte[] bytes)
    {
        try { bytes = Convert.FromBase64String(s); return true; }
        catch (FormatException) { bytes = []; return false; }
    }

    private static EnvelopeException Invalid(string message) => new(EnvelopeError.LegacyInvalid, message);

    /// <summary>Decrypts and verifies; the caller wipes the returned plaintext after use.</summary>
    public byte[] Decrypt(DataKey dataKey)
    {
        RequireKeyLength(dataKey);
        var plaintext = new byte[Ciphertext.Length];
        using var eax = new AesEax(dataKey.Plaintext);
        if (!eax.TryDecrypt(Nonce, ReadOnlySpan<byte>.Empty, Ciphertext, Tag, plaintext))
            throw new EnvelopeException(EnvelopeError.LegacyInvalid, "The legacy file failed authentication: wrong key, or the file was modified.");
        return plaintext;
    }

    /// <summary>Encrypts <paramref name="plaintext"/> into the four-line text, with the data key's first wrapped copy.</summary>
    public static byte[] Encrypt(DataKey dataKey, ReadOnlySpan<byte> plaintext)
    {
        if (plaintext.Length > MaxFileSize) throw Invalid($"The legacy format holds at most {MaxFileSize / (1024 * 1024)} MiB.");
        RequireKeyLength(dataKey);
        var nonce = RandomNumberGenerator.GetBytes(NonceSize);
        var ciphertext = new byte[plaintext.Length];
        var tag = new byte[TagSize];
        using (var eax = new AesEax(dataKey.Plaintext)) eax.Encrypt(nonce, ReadOnlySpan<byte>.Empty, plaintext, ciphertext, tag);
        var text = new StringBuilder();
        text.Append(dataKey.WrappedKeys[0].CiphertextBlob).Append('\n');
        text.Append(Convert.ToBase64String(nonce)).Append('\n');
        text.Append(Convert.ToBase64String(ciphertext)).Append('\n');
        text.Append(Convert.ToBase64String(tag)).Append('\n');
        return Encoding.ASCII.GetBytes(text.ToString());
    }

    /// <summary>The sample uses 32-byte data keys (AES-256-EAX); a 16-byte key would silently mean AES-128.</summary>
    private static void RequireKeyLength(DataKey dataKey)
    {
        if (dataKey.Length != DataKey.KeyLength)
            throw new KeyProviderException(KeyProviderError.InvalidDataKey, $"Legacy files need a {DataKey.KeyLength}-byte data key; this one has {dataKey.Length} bytes.");
    }
}
