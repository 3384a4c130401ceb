using EnvelopeKms.Keys;

namespace EnvelopeKms.Files;

/// <summary>The formats a file can be recognised as, by content.</summary>
public enum EnvelopeFileFormat
{
    Unknown,
    /// <summary>EKMS, version 1 or 2 (docs/format.md).</summary>
    Ekms,
    /// <summary>The KMS documentation sample's four base64 lines with AES-EAX.</summary>
    Legacy,
    /// <summary>An Alibaba Cloud Encryption SDK message in its ASN.1 (DER) layout (docs/alibaba-sdk-format.md).</summary>
    AlibabaSdk,
    /// <summary>An Alibaba Cloud Encryption SDK message in the Java SDK's stream layout.</summary>
    AlibabaSdkStream,
}

/// <summary>
/// One file format this library reads and writes, with its own rules: what its files can hold (an encryption
/// context, how many KMS keys), how it is recognised, described, encrypted, decrypted and verified. Callers get a
/// format from <see cref="FileFormats"/> ("the format of this file", or the one named by the user) and call it;
/// nothing outside the format's implementation decides by format. Every file operation writes through a temp file
/// beside the destination that is renamed into place only when complete (decryption: only after everything
/// authenticated), and deletes it on any failure.
/// </summary>
public abstract class FileFormat
{
    private protected FileFormat() { }

    public abstract EnvelopeFileFormat Id { get; }

    /// <summary>The name users give (-Format, -To) and see (the Format of results): EKMS, Legacy, AlibabaSdk, AlibabaSdkStream.</summary>
    public abstract string Name { get; }

    /// <summary>Whether a file of this format can hold an encryption context.</summary>
    public abstract bool HasContext { get; }

    /// <summary>The most KMS keys one file of this format is written under.</summary>
    public virtual int MaxKeys => Format.EnvelopeFormat.DefaultMaxWrappedKeys;

    /// <summary>Whether files record each KMS key by ARN, so key ids and aliases must be resolved to ARNs before encrypting.</summary>
    public virtual bool RecordsKeyArns => false;

    /// <summary>
    /// Whether small files are made ready (<see cref="PreparedFile"/>: read, and their output created) while the data
    /// key is on its way from KMS. Formats processed whole in memory by their own readers do not.
    /// </summary>
    public virtual bool ReadsAhead => false;

    /// <summary>
    /// Checks what a file is to be encrypted with, before any KMS call: <see cref="FormatRuleException"/> when the
    /// format cannot hold it.
    /// </summary>
    public virtual void CheckEncryption(int keyCount, EncryptionContext context)
    {
        if (context.Count > 0 && !HasContext)
            throw new FormatRuleException(FormatRule.NoContext, $"The {Name} format has no encryption context; encrypt without one, or in a format that has one (EKMS).");
        if (keyCount > MaxKeys)
        {
            throw MaxKeys == 1
                ? new FormatRuleException(FormatRule.OneKey, $"The {Name} format holds one wrapped key; give one KMS key.")
                : new FormatRuleException(FormatRule.TooManyKeys, $"At most {MaxKeys} KMS keys can wrap one file (the most a reader accepts by default); {keyCount} were given.");
        }
    }

    /// <summary>The file's header details, read without any key and without authentication.</summary>
    public abstract Task<FileDescription> DescribeAsync(string path, CancellationToken cancellationToken = default);

    /// <summary>Encrypts a file; <see cref="FileEncryption.ReadAhead"/> is used when this format <see cref="ReadsAhead"/>.</summary>
    public abstract Task<EnvelopeFileResult> EncryptAsync(FileEncryption request, CancellationToken cancellationToken = default);

    /// <summary>
    /// Decrypts a file. Everything that can fail without writing (header, required context, KMS) happens before the
    /// output's temp file exists; plaintext reaches the destination only once all of it authenticated.
    /// </summary>
    public abstract Task<EnvelopeFileResult> DecryptAsync(FileDecryption request, CancellationToken cancellationToken = default);

    /// <summary>Fully authenticates a file, unwrapping its data key, without writing plaintext anywhere.</summary>
    public abstract Task<FileVerification> VerifyAsync(string path, IDataKeyProvider keyProvider, EncryptionContext requiredContext,
        CancellationToken cancellationToken = default);

    /// <summary>Authenticates a file just written, with its data key still in hand (no KMS call): before a source is removed.</summary>
    public abstract Task VerifyAsync(string path, DataKey dataKey, CancellationToken cancellationToken = default);

    public override string ToString() => Name;
}

/// <summary>A file to encrypt. <see cref="KeyArns"/>: the KMS keys' ARNs, for a format that <see cref="FileFormat.RecordsKeyArns"/>.</summary>
public sealed record FileEncryption(string Source, string Destination, DataKey DataKey, EncryptionContext Context, bool Overwrite)
{
    public IReadOnlyList<string>? KeyArns { get; init; }

    /// <summary>The source read ahead (and perhaps its output created ahead), or null.</summary>
    public PreparedFile? ReadAhead { get; init; }

    public Format.ProgressCounter? Progress { get; init; }
}

/// <summary>A file to decrypt: the pairs of <see cref="RequiredContext"/> must be in the file's encryption context.</summary>
public sealed record FileDecryption(string Source, string Destination, IDataKeyProvider KeyProvider, EncryptionContext RequiredContext, bool Overwrite)
{
    /// <summary>The source read ahead (and perhaps its output created ahead), or null.</summary>
    public PreparedFile? ReadAhead { get; init; }

    public Format.ProgressCounter? Progress { get; init; }
}

/// <summary>A file that authenticated: the KMS key and the wrapped-key entry that unwrapped its data key; for an EKMS v2 file, a damaged header slot.</summary>
public sealed record FileVerification(string? KeyId, WrappedDataKey? UnwrappedFrom, string? SlotProblem);

/// <summary>What a file's header says, read without a key: what Get-EnvelopeFileInfo shows.</summary>
public sealed record FileDescription(string Path, FileFormat Format, long Length, IReadOnlyList<string> KeyIds, IReadOnlyList<WrappedDataKey> WrappedKeys,
    EncryptionContext Context)
{
    public int? Version { get; init; }
    public string? Suite { get; init; }
    public int? FrameLength { get; init; }
    /// <summary>Plaintext bytes, from the header or the file length; null when no valid file has this length.</summary>
    public long? PlaintextLength { get; init; }
    public string? MessageId { get; init; }
    /// <summary>EKMS v2: the newest parsed slot's generation (not authenticated without a key).</summary>
    public uint? Generation { get; init; }
    /// <summary>EKMS v2: the size of each header slot.</summary>
    public int? SlotSize { get; init; }
    /// <summary>EKMS v2: each slot's generation as read, 0 for a slot that does not parse.</summary>
    public IReadOnlyList<uint>? SlotGenerations { get; init; }
}

/// <summary>Which of a format's rules a request breaks.</summary>
public enum FormatRule
{
    /// <summary>An encryption context for a format that has none.</summary>
    NoContext,
    /// <summary>More than one KMS key for a format that holds one wrapped key.</summary>
    OneKey,
    /// <summary>More KMS keys than one file is written under.</summary>
    TooManyKeys,
    /// <summary>An encryption context larger than the format holds.</summary>
    ContextTooLarge,
}

/// <summary>A request a format cannot carry out by its rules (<see cref="FileFormat.CheckEncryption"/>).</summary>
public sealed class FormatRuleException(FormatRule rule, string message) : ArgumentException(message)
{
    public FormatRule Rule { get; } = rule;
}
