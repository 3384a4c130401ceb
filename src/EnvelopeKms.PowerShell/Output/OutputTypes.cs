using System.Collections.Specialized;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;

namespace EnvelopeKms.PowerShell;

/// <summary>One file written by Protect-EnvelopeFile or Unprotect-EnvelopeFile (-PassThru).</summary>
public sealed class EnvelopeFileResult
{
    public required string Operation { get; init; }
    /// <summary>The file written.</summary>
    public required string Path { get; init; }
    /// <summary>The file read.</summary>
    public required string Source { get; init; }
    /// <summary>
    /// The KMS key that generated (Protect: the first -KeyId) or unwrapped (Unprotect: the entry that actually gave
    /// the data key) the data key, as KMS reported it.
    /// </summary>
    public string? KeyId { get; init; }
    /// <summary>The region of that key: the region recorded in its wrapped-key entry (null when unknown).</summary>
    public string? Region { get; init; }
    /// <summary>Format of the envelope file: EKMS, Legacy, AlibabaSdk or AlibabaSdkStream.</summary>
    public required string Format { get; init; }
    /// <summary>Bytes of the file written.</summary>
    public long Length { get; init; }
    /// <summary>True when the source was removed after the output was verified (-RemoveSource).</summary>
    public bool SourceRemoved { get; init; }
    /// <summary>Lets the object bind to -LiteralPath of the next cmdlet (Get-Item, Unprotect-EnvelopeFile).</summary>
    public string PSPath => Path;
    public override string ToString() => Path;
}

/// <summary>A wrapped data key as Get-EnvelopeFileInfo shows it.</summary>
public sealed class EnvelopeWrappedKeyInfo
{
    public required string Provider { get; init; }
    public required string KeyId { get; init; }
    public string? KeyVersionId { get; init; }
    public string? Region { get; init; }
    public int CiphertextBlobLength { get; init; }
    public override string ToString() => KeyId;
}

/// <summary>Header details of an envelope file, read without any KMS call and without authentication.</summary>
public sealed class EnvelopeFileInfo
{
    public required string Path { get; init; }
    public required string Format { get; init; }
    public int? Version { get; init; }
    public string? Suite { get; init; }
    public int? FrameLength { get; init; }
    public required string[] KeyIds { get; init; }
    public required EnvelopeWrappedKeyInfo[] WrappedKeys { get; init; }
    public required OrderedDictionary EncryptionContext { get; init; }
    /// <summary>Plaintext bytes, computed from the file length (null if no valid file has this length).</summary>
    public long? PlaintextLength { get; init; }
    public long Length { get; init; }
    public string? MessageId { get; init; }
    public string PSPath => Path;

    internal static EnvelopeFileInfo FromHeader(string path, EnvelopeHeader header, long length) => new()
    {
        Path = path,
        Format = "EKMS",
        Version = header.Version,
        Suite = header.SuiteId == EnvelopeFormat.SuiteAes256GcmHkdfSha512Commit ? "AES-256-GCM/HKDF-SHA-512/commit" : $"0x{header.SuiteId:X4}",
        FrameLength = header.FrameLength,
        KeyIds = header.WrappedKeys.Select(k => k.KeyId).ToArray(),
        WrappedKeys = header.WrappedKeys.Select(ToInfo).ToArray(),
        EncryptionContext = ToDictionary(header.EncryptionContext),
        PlaintextLength = header.GetPlaintextLength(length),
        Length = length,
        MessageId = Convert.ToHexString(header.MessageId).ToLowerInvariant(),
    };

    internal static EnvelopeWrappedKeyInfo ToInfo(WrappedDataKey key) => new()
    {
        Provider = key.ProviderId,
        KeyId = key.KeyId,
        KeyVersionId = key.KeyVersionId.Length == 0 ? null : key.KeyVersionId,
        Region = key.Region.Length == 0 ? null : key.Region,
        CiphertextBlobLength = key.CiphertextBlob.Length,
    };

    internal static OrderedDictionary ToDictionary(EncryptionContext context)
    {
        var result = new OrderedDictionary(StringComparer.Ordinal);
        foreach (var (key, value) in context) result.Add(key, value);
        return result;
    }
}
