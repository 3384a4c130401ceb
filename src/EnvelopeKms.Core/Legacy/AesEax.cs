using System.Security.Cryptography;

namespace EnvelopeKms.Legacy;

/// <summary>
/// AES in EAX mode (Bellare, Rogaway, Wagner 2004), as pycryptodome's <c>AES.MODE_EAX</c> computes it, so that files
/// written by the KMS documentation's envelope sample can be read and written. .NET has no EAX; it is built here
/// from AES-ECB: OMAC (CMAC) for the nonce, header and ciphertext, and CTR mode starting at the nonce's OMAC.
/// Only the legacy format uses it; new files use AES-GCM.
/// </summary>
internal sealed class AesEax : IDisposable
{
    public const int BlockSize = 16;
    private readonly Aes _aes;
    private readonly byte[] _k1 = new byte[BlockSize];
    private readonly byte[] _k2 = new byte[BlockSize];

    public AesEax(ReadOnlySpan<byte> key)
    {
        _aes = Aes.Create();
        _aes.Key = key.ToArray();
        // CMAC subkeys: L = E_K(0^128); K1 = dbl(L); K2 = dbl(K1).
        Span<byte> l = stackalloc byte[BlockSize];
        _aes.EncryptEcb(new byte[BlockSize], l, PaddingMode.None);
        Double(l, _k1);
        Double(_k1, _k2);
        CryptographicOperations.ZeroMemory(l);
    }

    private static void Double(ReadOnlySpan<byte> input, Span<byte> output)
    {
        int carry = 0;
        for (int i = BlockSize - 1; i >= 0; i--)
        {
            int b = input[i];
            output[i] = (byte)((b << 1) | carry);
            carry = b >> 7;
        }
        if ((input[0] & 0x80) != 0) output[BlockSize - 1] ^= 0x87;
    }

    /// <summary>OMAC_t(data) = CMAC_K([t]_128 || data).</summary>
    private void Omac(byte t, ReadOnlySpan<byte> data, Span<byte> mac)
    {
        Span<byte> block = stackalloc byte[BlockSize];
        block.Clear();
        block[BlockSize - 1] = t;
        // The tweak block is always a full non-final block (data follows, or is empty and then the tweak is final).
        if (data.IsEmpty)
        {
            Xor(block, _k1);
            _aes.EncryptEcb(block, mac, PaddingMode.None);
            return;
        }
        _aes.EncryptEcb(block, mac, PaddingMode.None);
        int offset = 0;
        while (data.Length - offset > BlockSize)
        {
            Xor(mac, data.Slice(offset, BlockSize));
            _aes.EncryptEcb(mac, mac, PaddingMode.None);
            offset += BlockSize;
        }
        var last = data[offset..];
        if (last.Length == BlockSize)
        {
            Xor(mac, last);
            Xor(mac, _k1);
        }
        else
        {
            block.Clear();
            last.CopyTo(block);
            block[last.Length] = 0x80;
            Xor(mac, block);
            Xor(mac, _k2);
        }
        _aes.EncryptEcb(mac, mac, PaddingMode.None);
    }

    private static void Xor(Span<byte> target, ReadOnlySpan<byte> other)
    {
        for (int i = 0; i < target.Length; i++) target[i] ^= other[i];
    }

    /// <summary>CTR mode with a 128-bit big-endian counter starting at <paramref name="counter"/>.</summary>
    private void Ctr(ReadOnlySpan<byte> counter, ReadOnlySpan<byte> input, Span<byte> output)
    {
        const int chunkBlocks = 256;
        var counters = new byte[chunkBlocks * BlockSize];
        var stream = new byte[chunkBlocks * BlockSize];
        Span<byte> current = stackalloc byte[BlockSize];
        counter.CopyTo(current);
        for (int offset = 0; offset < input.Length; offset += counters.Length)
        {
            int n = Math.Min(counters.Length, input.Length - offset);
            int blocks = (n + BlockSize - 1) / BlockSize;
            for (int b = 0; b < blocks; b++)
            {
                current.CopyTo(counters.AsSpan(b * BlockSize));
                for (int i = BlockSize - 1; i >= 0 && ++current[i] == 0; i--) { }
            }
            _aes.EncryptEcb(counters.AsSpan(0, blocks * BlockSize), stream, PaddingMode.None);
            for (int i = 0; i < n; i++) output[offset + i] = (byte)(input[offset + i] ^ stream[i]);
        }
        CryptographicOperations.ZeroMemory(stream);
    }

    public void Encrypt(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> header, ReadOnlySpan<byte> plaintext, Span<byte> ciphertext, Span<byte> tag)
    {
        Span<byte> n = stackalloc byte[BlockSize];
        Span<byte> h = stackalloc byte[BlockSize];
        Span<byte> c = stackalloc byte[BlockSize];
        Omac(0, nonce, n);
        Omac(1, header, h);
        Ctr(n, plaintext, ciphertext);
        Omac(2, ciphertext[..plaintext.Length], c);
        for (int i = 0; i < BlockSize; i++) c[i] ^= (byte)(n[i] ^ h[i]);
        c[..tag.Length].CopyTo(tag);
    }

    public bool TryDecrypt(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> header, ReadOnlySpan<byte> ciphertext, ReadOnlySpan<byte> tag, Span<byte> plaintext)
    {
        Span<byte> n = stackalloc byte[BlockSize];
        Span<byte> h = stackalloc byte[BlockSize];
        Span<byte> c = stackalloc byte[BlockSize];
        Omac(0, nonce, n);
        Omac(1, header, h);
        Omac(2, ciphertext, c);
        for (int i = 0; i < BlockSize; i++) c[i] ^= (byte)(n[i] ^ h[i]);
        if (tag.Length < 4 || tag.Length > BlockSize || !CryptographicOperations.FixedTimeEquals(c[..tag.Length], tag))
            return false;
        Ctr(n, ciphertext, plaintext);
        return true;
    }

    public void Dispose()
    {
        _aes.Dispose();
        CryptographicOperations.ZeroMemory(_k1);
        CryptographicOperations.ZeroMemory(_k2);
    }
}
