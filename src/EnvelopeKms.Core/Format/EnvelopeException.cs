namespace EnvelopeKms.Format;

/// <summary>What is wrong with an envelope file. Stable: the module maps each to an error id.</summary>
public enum EnvelopeError
{
    /// <summary>The input does not start with the EKMS magic and is no other known format.</summary>
    NotEnvelope,
    /// <summary>The input is an EKMS file encoded as base64 text.</summary>
    Base64Encoded,
    /// <summary>The input was an EKMS file but line endings were converted (text-mode transfer).</summary>
    TextModeCorrupted,
    /// <summary>A format version this build does not read.</summary>
    UnsupportedVersion,
    /// <summary>An algorithm suite this build does not know.</summary>
    UnsupportedSuite,
    /// <summary>A header field is out of range, non-canonical, or runs past the end.</summary>
    MalformedHeader,
    /// <summary>A header claims more than the documented caps allow.</summary>
    LimitExceeded,
    /// <summary>The caller's required encryption context is not in the file.</summary>
    ContextMismatch,
    /// <summary>The unwrapped data key does not match the key commitment: wrong key.</summary>
    KeyCommitmentMismatch,
    /// <summary>The header authentication tag does not verify: the header was changed.</summary>
    HeaderTampered,
    /// <summary>A frame does not authenticate: changed, reordered, spliced or extended body.</summary>
    FrameTampered,
    /// <summary>The file ends before its final frame.</summary>
    Truncated,
    /// <summary>A legacy (documentation sample) file is malformed, too large, or fails to authenticate.</summary>
    LegacyInvalid,
    /// <summary>
    /// An Alibaba Cloud Encryption SDK message is malformed: not strict DER, a field of the wrong type or length,
    /// unsorted or duplicate entries, bytes after the end (docs/alibaba-sdk-format.md).
    /// </summary>
    SdkMalformed,
    /// <summary>An Alibaba Cloud Encryption SDK message uses an algorithm this build does not read (AES-CBC, AES-CTR, SM4, unknown ids).</summary>
    SdkUnsupportedAlgorithm,
    /// <summary>An Alibaba Cloud Encryption SDK message is larger than the most processed whole in memory.</summary>
    SdkMessageTooLarge,
    /// <summary>A conversion would need more memory than allowed: the file is larger than the converter's limit.</summary>
    ConvertTooLarge,
    /// <summary>A conversion would drop the file's encryption context (the target format has none).</summary>
    ConvertContextLost,
}

/// <summary>
/// An envelope file cannot be read or written. Messages say what is wrong and never contain key material.
/// </summary>
public sealed class EnvelopeException : Exception
{
    public EnvelopeException(EnvelopeError error, string message, Exception? inner = null) : base(message, inner)
        => Error = error;

    public EnvelopeError Error { get; }

    /// <summary>For frame errors: the 1-based index of the frame that failed.</summary>
    public long? FrameIndex { get; init; }
}
