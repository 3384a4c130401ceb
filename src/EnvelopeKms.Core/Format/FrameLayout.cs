namespace EnvelopeKms.Format;

/// <summary>
/// Body arithmetic (docs/format.md §6). The body is N full frames of F+16 bytes and one final frame of r+16 bytes
/// with 0 ≤ r &lt; F; so each plaintext length has exactly one body length and back.
/// </summary>
public static class FrameLayout
{
    public const int TagSize = EnvelopeFormat.TagSize;

    /// <summary>Body length for a plaintext length.</summary>
    public static long BodyLength(long plaintextLength, int frameLength)
    {
        long full = plaintextLength / frameLength;
        long rest = plaintextLength % frameLength;
        return checked(full * (frameLength + TagSize) + rest + TagSize);
    }

    /// <summary>Plaintext length for a body length, or null when no valid body has that length.</summary>
    public static long? PlaintextLength(long bodyLength, int frameLength)
    {
        if (bodyLength < TagSize) return null;
        long full = bodyLength / (frameLength + TagSize);
        long rest = bodyLength % (frameLength + TagSize);
        if (rest < TagSize || full >= EnvelopeFormat.MaxFrameCount) return null;
        return full * frameLength + rest - TagSize;
    }

    /// <summary>Number of frames, the final one included, for a plaintext length.</summary>
    public static long FrameCount(long plaintextLength, int frameLength) => plaintextLength / frameLength + 1;

    /// <summary>Offset of frame <paramref name="index"/> (1-based) from the start of the file.</summary>
    public static long FrameOffset(int headerLength, int frameLength, long index) => headerLength + (index - 1) * (frameLength + TagSize);
}
