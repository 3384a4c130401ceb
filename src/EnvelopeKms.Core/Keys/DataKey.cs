using System.Security.Cryptography;

namespace EnvelopeKms.Keys;

/// <summary>
/// A plaintext data key and the KMS-wrapped copies of it. The plaintext lives only in a pinned byte array
/// (so the GC never leaves a moved copy behind) that <see cref="Dispose"/> wipes.
/// </summary>
public sealed class DataKey : IDisposable
{
    /// <summary>Length of the data keys of EKMS and the legacy format (AES-256), and the default length.</summary>
    public const int KeyLength = 32;

    /// <summary>
    /// The other length a data key may have: AES-128, for reading (and writing) Alibaba Cloud Encryption SDK messages
    /// of algorithm 1. EKMS and the legacy format refuse such keys.
    /// </summary>
    public const int Aes128KeyLength = 16;

    /// <summary>True for the lengths a <see cref="DataKey"/> may have: 32 (the default) and 16 bytes.</summary>
    public static bool IsSupportedLength(int length) => length is KeyLength or Aes128KeyLength;

    private readonly byte[] _plaintext;
    private bool _disposed;

    /// <summary>Copies <paramref name="plaintext"/> into a pinned buffer; the caller wipes its own copy.</summary>
    public DataKey(ReadOnlySpan<byte> plaintext, IReadOnlyList<WrappedDataKey> wrappedKeys, string? keyId = null)
    {
        if (!IsSupportedLength(plaintext.Length))
        {
            throw new KeyProviderException(KeyProviderError.InvalidDataKey,
                $"The data key must be {KeyLength} (or {Aes128KeyLength}) bytes; the key provider returned {plaintext.Length}.");
        }
        _plaintext = SecretBuffers.Track(GC.AllocateArray<byte>(plaintext.Length, pinned: true));
        plaintext.CopyTo(_plaintext);
        WrappedKeys = wrappedKeys ?? throw new ArgumentNullException(nameof(wrappedKeys));
        KeyId = keyId;
    }

    /// <summary>The wrapped copies, in the order they are written to the file header.</summary>
    public IReadOnlyList<WrappedDataKey> WrappedKeys { get; }

    /// <summary>The KMS key that produced or unwrapped this data key, as KMS reported it.</summary>
    public string? KeyId { get; }

    /// <summary>The entry that was unwrapped to get this key (decryption only).</summary>
    public WrappedDataKey? UnwrappedFrom { get; init; }

    /// <summary>The plaintext key bytes. Valid only until <see cref="Dispose"/>.</summary>
    public ReadOnlySpan<byte> Plaintext
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _plaintext;
        }
    }

    /// <summary>Bytes of the key: 32, or 16 for an AES-128 key.</summary>
    public int Length => _plaintext.Length;

    /// <summary>The plaintext as memory, for the KMS client's Encrypt (which wipes its own encoded copy). Valid only until <see cref="Dispose"/>.</summary>
    internal ReadOnlyMemory<byte> PlaintextMemory
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _plaintext;
        }
    }

    /// <summary>True once the plaintext has been wiped.</summary>
    public bool IsDisposed => _disposed;

    /// <summary>Test hook: the raw buffer, to prove it is zero after disposal.</summary>
    internal byte[] BufferForTests => _plaintext;

    public void Dispose()
    {
        if (_disposed) return;
        CryptographicOperations.ZeroMemory(_plaintext);
        _disposed = true;
    }
}
