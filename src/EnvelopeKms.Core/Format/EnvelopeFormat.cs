namespace EnvelopeKms.Format;

/// <summary>Constants of the EKMS v1 and v2 formats (docs/format.md).</summary>
public static class EnvelopeFormat
{
    /// <summary>
    /// "\x89EKM\r\n\x1a\n": a non-ASCII first byte (not text, survives no 7-bit transfer), CR LF (caught if a
    /// text-mode transfer turns it into LF), Ctrl-Z (stops a DOS <c>type</c>), and a lone LF (caught if turned into CR LF).
    /// </summary>
    public static ReadOnlySpan<byte> Magic => [0x89, 0x45, 0x4B, 0x4D, 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>The base64 text of the magic's first six bytes: how a base64-encoded EKMS file starts.</summary>
    public const string Base64MagicPrefix = "iUVLTQ0K";

    public const byte Version1 = 0x01;

    /// <summary>Version 2: the v1 key schedule and body behind a fixed-size, double-slot header (docs/format.md §12).</summary>
    public const byte Version2 = 0x02;

    /// <summary>The version Protect-EnvelopeFile writes.</summary>
    public const byte DefaultVersion = Version2;

    /// <summary>AES-256-GCM, HKDF-SHA-512 per-file key, 32-byte key commitment, no signature.</summary>
    public const ushort SuiteAes256GcmHkdfSha512Commit = 0x0001;

    /// <summary>File extension the module writes.</summary>
    public const string FileExtension = ".ekms";

    public const int MessageIdSize = 32;
    public const int TagSize = 16;
    public const int CommitmentSize = 32;

    /// <summary>Bytes before the encryption context: magic, version, suite, reserved, frame length, message id.</summary>
    public const int FixedPrefixSize = 8 + 1 + 2 + 1 + 4 + MessageIdSize;

    /// <summary>v2: the fixed prefix plus the u32 slot size.</summary>
    public const int PreambleSize = FixedPrefixSize + 4;

    /// <summary>v2 slot size bounds and granularity (docs/format.md §12.1).</summary>
    public const int MinSlotSize = 1024;
    public const int MaxSlotSize = 256 * 1024;
    public const int SlotSizeGranularity = 512;

    /// <summary>v2: bytes of a slot before the encryption context: generation (4), header nonce (8).</summary>
    public const int SlotFixedPrefixSize = 4 + HeaderNonceSize;

    /// <summary>v2: the random part of a slot's header-tag nonce, stored in the slot.</summary>
    public const int HeaderNonceSize = 8;

    public const int MinFrameLength = 4096;
    public const int MaxFrameLength = 16 * 1024 * 1024;
    public const int DefaultFrameLength = 64 * 1024;

    /// <summary>At most 2^32 frames per file (the frame index is a 32-bit quantity in the nonce space we allow).</summary>
    public const long MaxFrameCount = 1L << 32;

    public const int MaxProviderIdLength = 64;
    public const int MaxKeyIdLength = 2048;
    public const int MaxKeyVersionLength = 256;
    public const int MaxRegionLength = 64;
    public const int MaxCiphertextBlobLength = 4096;

    /// <summary>Hard cap on wrapped-key entries a file may carry.</summary>
    public const int MaxWrappedKeysHardLimit = 16;

    /// <summary>
    /// Wrapped-key entries a reader accepts unless configured otherwise (§3), and so the most KMS keys EnvelopeKms
    /// wraps one file under: a file it writes is readable by every reader with default limits.
    /// </summary>
    public const int DefaultMaxWrappedKeys = 8;
}
