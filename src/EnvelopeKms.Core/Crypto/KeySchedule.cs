using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace EnvelopeKms.Crypto;

/// <summary>
/// Suite 1 key schedule (docs/format.md §5): one HKDF-SHA-512 extract over the data key salted with the message id,
/// then two expands: the per-file encryption key and the key-commitment value. Because every file has a fresh
/// random message id, one data key can safely encrypt many files (each gets its own AES key and nonce space).
/// </summary>
internal static class KeySchedule
{
    public const int CommitmentSize = 32;
    private static readonly byte[] DeriveLabel = Encoding.ASCII.GetBytes("EKMS1-DERIVEKEY");
    private static readonly byte[] CommitLabel = Encoding.ASCII.GetBytes("EKMS1-COMMITKEY");

    /// <summary>Derives the file key and the commitment. The caller wipes <paramref name="fileKey"/>.</summary>
    public static void Derive(ReadOnlySpan<byte> dataKey, ReadOnlySpan<byte> messageId, ushort suiteId, Span<byte> fileKey, Span<byte> commitment)
    {
        Span<byte> prk = stackalloc byte[64];
        Span<byte> info = stackalloc byte[DeriveLabel.Length + 2];
        try
        {
            HKDF.Extract(HashAlgorithmName.SHA512, dataKey, messageId, prk);
            DeriveLabel.CopyTo(info);
            BinaryPrimitives.WriteUInt16BigEndian(info[DeriveLabel.Length..], suiteId);
            HKDF.Expand(HashAlgorithmName.SHA512, prk, fileKey[..FrameCipher.KeySize], info);
            CommitLabel.CopyTo(info);
            HKDF.Expand(HashAlgorithmName.SHA512, prk, commitment[..CommitmentSize], info);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(prk);
        }
    }
}
