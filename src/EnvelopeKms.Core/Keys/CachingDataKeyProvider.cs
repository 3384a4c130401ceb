using System.Collections.Concurrent;

namespace EnvelopeKms.Keys;

/// <summary>
/// Remembers unwrapped data keys for one pipeline, so files wrapped with the same <c>CiphertextBlob</c> and context
/// cost one KMS <c>Decrypt</c>. Concurrent requests for the same entries share one call. A key is cached only under
/// the entry that actually unwrapped it: entries are unauthenticated, and a file whose first entry copies another
/// file's blob but cannot be unwrapped (another region) while its second entry is its own must not make that blob
/// answer with its key (issue 18). Every cached key is wiped on <see cref="Dispose"/>; the cache holds at most
/// <see cref="MaxEntries"/> keys.
/// </summary>
public sealed class CachingDataKeyProvider(IDataKeyProvider inner) : IDataKeyProvider, IDisposable
{
    public const int MaxEntries = 1024;

    /// <summary>By the entry that unwrapped (provider id, blob, context, key length): what later files look up.</summary>
    private readonly ConcurrentDictionary<string, Lazy<Task<DataKey>>> _cache = new(StringComparer.Ordinal);

    /// <summary>By the whole entry list: concurrent misses on the same list share one call. Never looked up by entry.</summary>
    private readonly ConcurrentDictionary<string, Lazy<Task<DataKey>>> _calls = new(StringComparer.Ordinal);
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
        string contextKey = Field(keyLength.ToString(System.Globalization.CultureInfo.InvariantCulture)) + Field(context.ToKmsJson() ?? string.Empty);
        foreach (var entry in entries)
        {
            if (_cache.TryGetValue(CacheKey(entry, contextKey), out var hit) && hit.Value.IsCompletedSuccessfully)
                return Copy(hit.Value.Result, entries, entry);
        }
        if (_calls.Count >= MaxEntries) // each call owns one key; _cache only points at them
        {
            // The cache is full: this key is not kept, so it is this caller's alone, and wiped once copied.
            using var uncached = await inner.DecryptDataKeyAsync(entries, context, keyLength, cancellationToken).ConfigureAwait(false);
            return Copy(uncached, entries, uncached.UnwrappedFrom);
        }
        string callKey = contextKey + string.Concat(entries.Select(e => CacheKey(e, "")));
        var lazy = _calls.GetOrAdd(callKey, _ => new Lazy<Task<DataKey>>(() => inner.DecryptDataKeyAsync(entries, context, keyLength, CancellationToken.None)));
        DataKey unwrapped;
        try
        {
            unwrapped = await lazy.Value.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch when (!cancellationToken.IsCancellationRequested)
        {
            _calls.TryRemove(new KeyValuePair<string, Lazy<Task<DataKey>>>(callKey, lazy));
            throw;
        }
        // The lazy stays in _calls too (it owns the key until Dispose, even when another call cached that entry first).
        if (unwrapped.UnwrappedFrom is { } used) _cache.TryAdd(CacheKey(used, contextKey), lazy);
        return Copy(unwrapped, entries, unwrapped.UnwrappedFrom is { } u ? entries.FirstOrDefault(e => e == u) ?? u : null);
    }

    /// <summary>Length-prefixed, so no provider id or blob (arbitrary text from a file) can make two keys collide.</summary>
    private static string Field(string value) => value.Length.ToString(System.Globalization.CultureInfo.InvariantCulture) + ":" + value;

    private static string CacheKey(WrappedDataKey entry, string contextKey) => Field(entry.ProviderId) + Field(entry.CiphertextBlob) + contextKey;

    /// <summary>
    /// Each caller gets (and wipes) its own copy, naming the caller's own entry as the one unwrapped (the cached key
    /// may have come from another file's entry with the same blob); the cached one lives until the cache is disposed.
    /// </summary>
    private static DataKey Copy(DataKey cached, IReadOnlyList<WrappedDataKey> entries, WrappedDataKey? usedEntry)
        => new(cached.Plaintext, entries, cached.KeyId) { UnwrappedFrom = usedEntry };

    public void Dispose()
    {
        _disposed = true;
        // A key may sit in both dictionaries; DataKey.Dispose is idempotent.
        foreach (var lazy in _cache.Values.Concat(_calls.Values))
        {
            if (!lazy.IsValueCreated) continue;
            // A call still in flight is wiped when it lands: nothing will ever read it from a disposed cache.
            if (lazy.Value.IsCompletedSuccessfully) lazy.Value.Result.Dispose();
            else lazy.Value.ContinueWith(t => { if (t.IsCompletedSuccessfully) t.Result.Dispose(); }, TaskScheduler.Default);
        }
        _cache.Clear();
        _calls.Clear();
    }
}
