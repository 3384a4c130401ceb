namespace EnvelopeKms.Keys;

/// <summary>
/// The seam between the file format and a key management service. The format code asks for "a new data key
/// wrapped under these KMS keys for this context" and "unwrap one of these entries with this context"; it never
/// sees credentials or HTTP.
/// </summary>
public interface IDataKeyProvider
{
    /// <summary>
    /// Generates a 32-byte data key wrapped under the first of <paramref name="keyIds"/> and also under every other
    /// one. The context is bound to every wrapped copy.
    /// </summary>
    Task<DataKey> GenerateDataKeyAsync(IReadOnlyList<string> keyIds, EncryptionContext context, CancellationToken cancellationToken);

    /// <summary>
    /// Unwraps the first entry it may and can; entries are tried in order. Throws
    /// <see cref="KeyProviderException"/> when none can be unwrapped.
    /// </summary>
    Task<DataKey> DecryptDataKeyAsync(IReadOnlyList<WrappedDataKey> entries, EncryptionContext context, CancellationToken cancellationToken);
}
