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

    private readonly byte[] _ciphertext;
    private readonly int _ciphertextLength;

    internal LegacyEnvelope(string ciphertextBlob, byte[] nonce, byte[] ciphertext, int ciphertextLength, byte[] tag)
    {
        CiphertextBlob = ciphertextBlob;
        Nonce = nonce;
        _ciphertext = ciphertext;
        _ciphertextLength = ciphertextLength;
        Tag = tag;
    }

    public string CiphertextBlob { get; }
    public byte[] Nonce { get; }
    /// <summary>The decoded third line (in a buffer that grew as it was read, so possibly larger than this).</summary>
    public ReadOnlyMemory<byte> Ciphertext => _ciphertext.AsMemory(0, _ciphertextLength);
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

    /// <summary>Parses the four lines; tolerates CRLF and trailing whitespace, nothing else (see <see cref="LegacyEnvelopeReader"/>).</summary>
    public static LegacyEnvelope Parse(ReadOnlySpan<byte> content)
    {
        if (content.Length > MaxFileSize) throw Invalid($"The legacy file is larger than {MaxFileSize / (1024 * 1024)} MiB, the most read whole into memory.");
        var reader = new LegacyEnvelopeReader();
        reader.Feed(content);
        return reader.Finish();
    }

    /// <summary>
    /// Reads and parses a legacy file from <paramref name="input"/> as it arrives: every byte is checked against its
    /// line's shape before anything is kept, so input that only starts like a legacy file is refused after a few
    /// bytes, and memory grows only with the ciphertext actually read (never from the input's length).
    /// </summary>
    public static async Task<LegacyEnvelope> ReadAsync(Stream input, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.CanSeek && input.Length - input.Position > MaxFileSize)
            throw Invalid($"The file is larger than {MaxFileSize / (1024 * 1024)} MiB, the most the legacy format handles (it is processed whole in memory).");
        var reader = new LegacyEnvelopeReader();
        var chunk = new byte[64 * 1024];
        int n;
        while ((n = await input.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0) reader.Feed(chunk.AsSpan(0, n));
        return reader.Finish();
    }

    private static EnvelopeException Invalid(string message) => new(EnvelopeError.LegacyInvalid, message);

    /// <summary>Decrypts and verifies; the caller wipes the returned plaintext after use.</summary>
    public byte[] Decrypt(DataKey dataKey)
    {
        RequireKeyLength(dataKey);
        var plaintext = new byte[_ciphertextLength];
        using var eax = new AesEax(dataKey.Plaintext);
        if (!eax.TryDecrypt(Nonce, ReadOnlySpan<byte>.Empty, Ciphertext.Span, Tag, plaintext))
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
