using System.Security.Cryptography;

namespace EnvelopeKms.Crypto;

/// <summary>AES-256-GCM through the platform's <see cref="AesGcm"/> (OpenSSL on Linux, CNG on Windows).</summary>
internal sealed class AesGcmFrameCipher : IFrameCipher
{
    private readonly AesGcm _aes;

    public AesGcmFrameCipher(ReadOnlySpan<byte> key) => _aes = new AesGcm(key, FrameCipher.TagSize);

    public void Encrypt(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> plaintext, Span<byte> ciphertext, Span<byte> tag, ReadOnlySpan<byte> associatedData)
        => _aes.Encrypt(nonce, plaintext, ciphertext, tag, associatedData);

    public bool TryDecrypt(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> ciphertext, ReadOnlySpan<byte> tag, Span<byte> plaintext, ReadOnlySpan<byte> associatedData)
    {
        try
        {
            _aes.Decrypt(nonce, ciphertext, tag, plaintext, associatedData);
            return true;
        }
        catch (AuthenticationTagMismatchException)
        {
            CryptographicOperations.ZeroMemory(plaintext);
            return false;
        }
    }

    public void Dispose() => _aes.Dispose();
}
