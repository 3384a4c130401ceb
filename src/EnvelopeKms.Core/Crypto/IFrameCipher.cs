namespace EnvelopeKms.Crypto;

/// <summary>
/// The one seam over the AEAD primitive (AES-256-GCM, 12-byte nonce, 16-byte tag). The format code only talks to
/// this interface, so a build for a runtime without <see cref="System.Security.Cryptography.AesGcm"/> (Windows
/// PowerShell 5.1 on .NET Framework) can swap in another implementation without touching the format.
/// Instances are not thread-safe: use one per thread.
/// </summary>
internal interface IFrameCipher : IDisposable
{
    void Encrypt(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> plaintext, Span<byte> ciphertext, Span<byte> tag, ReadOnlySpan<byte> associatedData);

    /// <summary>Returns false when the tag does not verify; <paramref name="plaintext"/> is then zeroed.</summary>
    bool TryDecrypt(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> ciphertext, ReadOnlySpan<byte> tag, Span<byte> plaintext, ReadOnlySpan<byte> associatedData);
}

/// <summary>Creates the frame cipher of the running platform.</summary>
internal static class FrameCipher
{
    public const int NonceSize = 12;
    public const int TagSize = 16;
    public const int KeySize = 32;

    public static IFrameCipher Create(ReadOnlySpan<byte> key) => new AesGcmFrameCipher(key);
}
