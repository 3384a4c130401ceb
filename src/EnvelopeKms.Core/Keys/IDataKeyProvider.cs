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

    /// <summary>
    /// As <see cref="GenerateDataKeyAsync(IReadOnlyList{string}, EncryptionContext, CancellationToken)"/>, for a data key
    /// of <paramref name="keyLength"/> bytes (<see cref="DataKey.KeyLength"/> or <see cref="DataKey.Aes128KeyLength"/>).
    /// A provider that only knows 32-byte keys refuses other lengths.
    /// </summary>
    Task<DataKey> GenerateDataKeyAsync(IReadOnlyList<string> keyIds, EncryptionContext context, int keyLength, CancellationToken cancellationToken)
        => keyLength == DataKey.KeyLength
            ? GenerateDataKeyAsync(keyIds, context, cancellationToken)
            : Task.FromException<DataKey>(UnsupportedLength(keyLength));

    /// <summary>
    /// As <see cref="DecryptDataKeyAsync(IReadOnlyList{WrappedDataKey}, EncryptionContext, CancellationToken)"/>, where
    /// the unwrapped key must be <paramref name="keyLength"/> bytes long (a key of any other length is an
    /// <see cref="KeyProviderError.InvalidDataKey"/> failure).
    /// </summary>
    Task<DataKey> DecryptDataKeyAsync(IReadOnlyList<WrappedDataKey> entries, EncryptionContext context, int keyLength, CancellationToken cancellationToken)
        => keyLength == DataKey.KeyLength
            ? DecryptDataKeyAsync(entries, context, cancellationToken)
            : Task.FromException<DataKey>(UnsupportedLength(keyLength));

    private static KeyProviderException UnsupportedLength(int keyLength)
        => new(KeyProviderError.InvalidDataKey, $"This key provider supplies {DataKey.KeyLength}-byte data keys only, not {keyLength}-byte keys.");
}
