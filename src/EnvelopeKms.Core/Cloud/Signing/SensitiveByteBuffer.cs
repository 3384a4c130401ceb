using System.Buffers;
using System.Security.Cryptography;

namespace EnvelopeKms.Cloud.Signing;

/// <summary>
/// A growable byte buffer for bytes that may carry secrets (a base64 data key inside a form body or a string to
/// sign). It is pinned so the GC never leaves a moved copy behind, and every buffer it outgrows, as well as the
/// final one, is wiped.
/// </summary>
internal sealed class SensitiveByteBuffer : IBufferWriter<byte>, IDisposable
{
    private byte[] _buffer;
    private int _length;

    public SensitiveByteBuffer(int initialCapacity = 256)
        => _buffer = Keys.SecretBuffers.Track(GC.AllocateUninitializedArray<byte>(Math.Max(16, initialCapacity), pinned: true));

    public int Length => _length;

    public ReadOnlySpan<byte> WrittenSpan => _buffer.AsSpan(0, _length);

    public ReadOnlyMemory<byte> WrittenMemory => _buffer.AsMemory(0, _length);

    public void Append(ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(GetSpan(bytes.Length));
        Advance(bytes.Length);
    }

    public void Append(byte b)
    {
        GetSpan(1)[0] = b;
        Advance(1);
    }

    /// <summary>Appends the UTF-8 bytes of a non-secret string.</summary>
    public void AppendUtf8(string s)
    {
        int max = System.Text.Encoding.UTF8.GetMaxByteCount(s.Length);
        int n = System.Text.Encoding.UTF8.GetBytes(s, GetSpan(max));
        Advance(n);
    }

    public void Advance(int count) => _length += count;

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _buffer.AsMemory(_length);
    }

    public Span<byte> GetSpan(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _buffer.AsSpan(_length);
    }

    private void Ensure(int sizeHint)
    {
        int needed = _length + Math.Max(1, sizeHint);
        if (needed <= _buffer.Length) return;
        var larger = Keys.SecretBuffers.Track(GC.AllocateUninitializedArray<byte>(Math.Max(needed, _buffer.Length * 2), pinned: true));
        _buffer.AsSpan(0, _length).CopyTo(larger);
        CryptographicOperations.ZeroMemory(_buffer);
        _buffer = larger;
    }

    public void Dispose()
    {
        CryptographicOperations.ZeroMemory(_buffer);
        _length = 0;
    }
}
