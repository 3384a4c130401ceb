namespace EnvelopeKms.Keys;

/// <summary>
/// What re-wrapping needs from a key management service besides unwrapping: wrap an existing data key under
/// another key (KMS <c>Encrypt</c>), and tell which keys a user's key reference names (an alias resolves to its key).
/// </summary>
public interface IDataKeyWrapper
{
    /// <summary>Wraps <paramref name="dataKey"/> under <paramref name="keyId"/>, bound to <paramref name="context"/>: the new header entry.</summary>
    Task<WrappedDataKey> WrapDataKeyAsync(string keyId, DataKey dataKey, EncryptionContext context, CancellationToken cancellationToken);

    /// <summary>
    /// The names a key reference stands for, to match against entries' key ids: for an alias, the key id and ARN it
    /// points to (empty when the alias does not exist); for a key id or ARN, itself.
    /// </summary>
    Task<IReadOnlyList<string>> ResolveKeyReferenceAsync(string keyReference, CancellationToken cancellationToken);
}
