using EnvelopeKms.Keys;

namespace EnvelopeKms.Fuzz;

/// <summary>
/// Unwraps every entry to the test vectors' data key (bytes 0..31, or 0..15 for AES-128), with no KMS: a mutated
/// input whose header still authenticates under that key then reaches the frame and body readers, which is where
/// the vectors in the seed corpora lead afl++. It never generates keys: the harnesses only read.
/// </summary>
internal sealed class VectorKeyProvider : IDataKeyProvider
{
    public Task<DataKey> GenerateDataKeyAsync(IReadOnlyList<string> keyIds, EncryptionContext context, CancellationToken cancellationToken)
        => throw new NotSupportedException("The fuzz harnesses only decrypt.");

    public Task<DataKey> DecryptDataKeyAsync(IReadOnlyList<WrappedDataKey> entries, EncryptionContext context, CancellationToken cancellationToken)
        => DecryptDataKeyAsync(entries, context, DataKey.KeyLength, cancellationToken);

    public Task<DataKey> DecryptDataKeyAsync(IReadOnlyList<WrappedDataKey> entries, EncryptionContext context, int keyLength, CancellationToken cancellationToken)
    {
        if (entries.Count == 0)
            return Task.FromException<DataKey>(new KeyProviderException(KeyProviderError.NoMatchingKey, "No entry to unwrap."));
        if (!DataKey.IsSupportedLength(keyLength))
            return Task.FromException<DataKey>(new KeyProviderException(KeyProviderError.InvalidDataKey, $"No {keyLength}-byte data keys here."));
        return Task.FromResult(new DataKey(FuzzTargets.VectorKey(keyLength), entries, entries[0].KeyId) { UnwrappedFrom = entries[0] });
    }
}
