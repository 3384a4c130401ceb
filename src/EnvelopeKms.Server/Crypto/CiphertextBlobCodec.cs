using System.Security.Cryptography;
using System.Text;

namespace EnvelopeKms.Server.Crypto;

/// <summary>
/// The server's own CiphertextBlob layout, shaped like the real service's (a 36-character
/// key-version id first, so Decrypt needs no KeyId):
/// <code>
/// versionId (36 ASCII bytes) | format 0x01 | nonce (12) | AES-256-GCM ciphertext | tag (16)
/// AAD = "EnvelopeKms.Server/blob/v1\n" + keyId + "\n" + versionId + "\n" + canonical context JSON
/// </code>
/// Binding the key id and the context into the AAD means a blob only decrypts under the exact
/// key version and an equal EncryptionContext; any change fails the tag check.
/// </summary>
internal static class CiphertextBlobCodec
{
    public const int VersionIdLength = 36;
    public const byte FormatVersion = 1;
    private const int NonceLength = 12;
    private const int TagLength = 16;
    private const int HeaderLength = VersionIdLength + 1 + NonceLength;
    private const string AadLabel = "EnvelopeKms.Server/blob/v1";

    public static byte[] Seal(string keyId, string keyVersionId, byte[] material, byte[] plaintext, byte[] canonicalContext)
    {
        var blob = new byte[HeaderLength + plaintext.Length + TagLength];
        if (Encoding.ASCII.GetBytes(keyVersionId, blob) != VersionIdLength)
        {
            throw new ArgumentException("A key version id is 36 characters.", nameof(keyVersionId));
        }
        blob[VersionIdLength] = FormatVersion;
        var nonce = blob.AsSpan(VersionIdLength + 1, NonceLength);
        RandomNumberGenerator.Fill(nonce);
        using var aes = new AesGcm(material, TagLength);
        aes.Encrypt(nonce, plaintext, blob.AsSpan(HeaderLength, plaintext.Length), blob.AsSpan(HeaderLength + plaintext.Length),
            AssociatedData(keyId, keyVersionId, canonicalContext));
        return blob;
    }

    /// <summary>Reads the version id without decrypting; null when the bytes are not one of our blobs.</summary>
    public static string? ReadKeyVersionId(byte[] blob)
    {
        if (blob.Length < HeaderLength + TagLength || blob[VersionIdLength] != FormatVersion)
        {
            return null;
        }
        var versionId = Encoding.ASCII.GetString(blob, 0, VersionIdLength);
        return Guid.TryParseExact(versionId, "D", out _) ? versionId : null;
    }

    /// <summary>Decrypts; null when authentication fails (tampered blob, other key, or different context).</summary>
    public static byte[]? Open(string keyId, string keyVersionId, byte[] material, byte[] blob, byte[] canonicalContext)
    {
        var plaintextLength = blob.Length - HeaderLength - TagLength;
        var plaintext = new byte[plaintextLength];
        using var aes = new AesGcm(material, TagLength);
        try
        {
            aes.Decrypt(blob.AsSpan(VersionIdLength + 1, NonceLength), blob.AsSpan(HeaderLength, plaintextLength),
                blob.AsSpan(HeaderLength + plaintextLength), plaintext, AssociatedData(keyId, keyVersionId, canonicalContext));
            return plaintext;
        }
        catch (AuthenticationTagMismatchException)
        {
            return null;
        }
    }

    private static byte[] AssociatedData(string keyId, string keyVersionId, byte[] canonicalContext) =>
        [.. Encoding.UTF8.GetBytes(AadLabel + "\n" + keyId + "\n" + keyVersionId + "\n"), .. canonicalContext];
}
