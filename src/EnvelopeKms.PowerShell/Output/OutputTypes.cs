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
    /// <summary>Unprotect, format v2: set when one header slot was damaged or stale and the other one was used.</summary>
    public string? SlotProblem { get; init; }
    /// <summary>Lets the object bind to -LiteralPath of the next cmdlet (Get-Item, Unprotect-EnvelopeFile).</summary>
    public string PSPath => Path;
    public override string ToString() => Path;
}

/// <summary>One file checked by Test-EnvelopeFile in a batch (piped input, or several files named).</summary>
public sealed class EnvelopeFileTestResult
{
    /// <summary>The file checked.</summary>
    public required string Path { get; init; }
    /// <summary>True when the file fully authenticates (key commitment, header and every frame).</summary>
    public bool Result { get; init; }
    /// <summary>The KMS key that unwrapped the data key (a file that authenticates).</summary>
    public string? KeyId { get; init; }
    /// <summary>The region of that key (null when unknown).</summary>
    public string? Region { get; init; }
    /// <summary>Why the file does not authenticate: the error id (as in the error catalogue) and the message.</summary>
    public string? ErrorId { get; init; }
    public string? Message { get; init; }
    /// <summary>Lets the object bind to -LiteralPath of the next cmdlet.</summary>
    public string PSPath => Path;
    public override string ToString() => Path;
}

/// <summary>One file updated by Update-EnvelopeFileKey (-PassThru).</summary>
public sealed class EnvelopeFileKeyUpdate
{
    public required string Path { get; init; }
    /// <summary>The KMS keys the file was wrapped under before.</summary>
    public required string[] OldKeyIds { get; init; }
    /// <summary>The KMS keys the file is wrapped under now.</summary>
    public required string[] NewKeyIds { get; init; }
    /// <summary>The header generation now (format v2).</summary>
    public uint Generation { get; init; }
    /// <summary>False when the file already had exactly these keys and was left as it was.</summary>
    public bool Changed { get; init; }
    /// <summary>True when the whole file was rewritten (a v1 file, or a key list too large for the header slots); false for a header-only update.</summary>
    public bool Rewritten { get; init; }
    /// <summary>The format version the file had before (1 or 2); it is 2 afterwards.</summary>
    public int PreviousVersion { get; init; }
    public int SlotSize { get; init; }
    public string PSPath => Path;
    public override string ToString() => Path;

    internal static EnvelopeFileKeyUpdate From(Files.EnvelopeKeyUpdateResult result) => new()
    {
        Path = result.Path,
        OldKeyIds = result.OldKeys.Select(k => k.KeyId).ToArray(),
        NewKeyIds = result.NewKeys.Select(k => k.KeyId).ToArray(),
        Generation = result.Generation,
        Changed = result.Changed,
        Rewritten = result.Rewritten,
        PreviousVersion = result.OldVersion,
        SlotSize = result.SlotSize,
    };
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
    /// <summary>Format v2: the header's generation (of the newest slot that parses; not authenticated without a key).</summary>
    public uint? Generation { get; init; }
    /// <summary>Format v2: the size of each of the two header slots, in bytes.</summary>
    public int? SlotSize { get; init; }
    /// <summary>Format v2: each slot's generation as read, 0 for a slot that does not parse (a torn or damaged write).</summary>
    public uint[]? SlotGenerations { get; init; }
    public string PSPath => Path;

    internal static EnvelopeFileInfo From(Files.FileDescription d) => new()
    {
        Path = d.Path,
        Format = d.Format.Name,
        Version = d.Version,
        Generation = d.Generation,
        SlotSize = d.SlotSize,
        SlotGenerations = d.SlotGenerations?.ToArray(),
        Suite = d.Suite,
        FrameLength = d.FrameLength,
        KeyIds = d.KeyIds.ToArray(),
        WrappedKeys = d.WrappedKeys.Select(ToInfo).ToArray(),
        EncryptionContext = ToDictionary(d.Context),
        PlaintextLength = d.PlaintextLength,
        Length = d.Length,
        MessageId = d.MessageId,
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
