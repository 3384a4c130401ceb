using System.Collections.Concurrent;

namespace EnvelopeKms.Keys;

/// <summary>
/// Remembers unwrapped data keys for one pipeline, so files wrapped with the same <c>CiphertextBlob</c> and context
/// cost one KMS <c>Decrypt</c>. Concurrent requests for the same blob share one call. Every cached key is wiped on
/// <see cref="Dispose"/>; the cache holds at most <see cref="MaxEntries"/> keys.
/// </summary>
public sealed class CachingDataKeyProvider(IDataKeyProvider inner) : IDataKeyProvider, IDisposable
{
    public const int MaxEntries = 1024;
    private readonly ConcurrentDictionary<string, Lazy<Task<DataKey>>> _cache = new(StringComparer.Ordinal);
    private bool _disposed;

    public Task<DataKey> GenerateDataKeyAsync(IReadOnlyList<string> keyIds, EncryptionContext context, CancellationToken cancellationToken)
        => inner.GenerateDataKeyAsync(keyIds, context, cancellationToken);

    public Task<DataKey> GenerateDataKeyAsync(IReadOnlyList<string> keyIds, EncryptionContext context, int keyLength, CancellationToken cancellationToken)
        => inner.GenerateDataKeyAsync(keyIds, context, keyLength, cancellationToken);

    public Task<DataKey> DecryptDataKeyAsync(IReadOnlyList<WrappedDataKey> entries, EncryptionContext context, CancellationToken cancellationToken)
        => DecryptDataKeyAsync(entries, context, DataKey.KeyLength, cancellationToken);

    public async Task<DataKey> DecryptDataKeyAsync(IReadOnlyList<WrappedDataKey> entries, EncryptionContext context, int keyLength, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        // The key length is part of the cache key: a request for another length is another question to the provider.
        string contextKey = keyLength + "\n" + (context.ToKmsJson() ?? string.Empty);
        foreach (var entry in entries)
        {
            if (_cache.TryGetValue(CacheKey(entry, contextKey), out var hit) && hit.Value.IsCompletedSuccessfully)
                return Copy(hit.Value.Result, entries);
        }
        // Coalesce concurrent misses on the same first entry (the common case: a batch of files with one blob).
        string key = CacheKey(entries[0], contextKey);
        if (_cache.Count >= MaxEntries)
        {
            // The cache is full: this key is not kept, so it is this caller's alone, and wiped once copied.
            using var uncached = await inner.DecryptDataKeyAsync(entries, context, keyLength, cancellationToken).ConfigureAwait(false);
            return Copy(uncached, entries);
        }
        var lazy = _cache.GetOrAdd(key, _ => new Lazy<Task<DataKey>>(() => inner.DecryptDataKeyAsync(entries, context, keyLength, CancellationToken.None)));
        DataKey unwrapped;
        try
        {
            unwrapped = await lazy.Value.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch when (!cancellationToken.IsCancellationRequested)
        {
            _cache.TryRemove(new KeyValuePair<string, Lazy<Task<DataKey>>>(key, lazy));
            throw;
        }
        if (unwrapped.UnwrappedFrom is { } used && !ReferenceEquals(used, entries[0]))
            _cache.TryAdd(CacheKey(used, contextKey), lazy);
        return Copy(unwrapped, entries);
    }

    private static string CacheKey(WrappedDataKey entry, string contextJson) => entry.ProviderId + "\n" + entry.CiphertextBlob + "\n" + contextJson;

    /// <summary>Each caller gets (and wipes) its own copy; the cached one lives until the cache is disposed.</summary>
    private static DataKey Copy(DataKey cached, IReadOnlyList<WrappedDataKey> entries)
        => new(cached.Plaintext, entries, cached.KeyId) { UnwrappedFrom = cached.UnwrappedFrom };

    public void Dispose()
    {
        _disposed = true;
        foreach (var lazy in _cache.Values)
        {
            if (!lazy.IsValueCreated) continue;
            // A call still in flight is wiped when it lands: nothing will ever read it from a disposed cache.
            if (lazy.Value.IsCompletedSuccessfully) lazy.Value.Result.Dispose();
            else lazy.Value.ContinueWith(t => { if (t.IsCompletedSuccessfully) t.Result.Dispose(); }, TaskScheduler.Default);
        }
        _cache.Clear();
    }
}
