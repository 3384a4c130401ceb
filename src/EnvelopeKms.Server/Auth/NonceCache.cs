using System.Collections.Concurrent;

namespace EnvelopeKms.Server.Auth;

/// <summary>
/// Remembers the signature nonces seen per AccessKeyId so a captured request cannot be
/// replayed. A nonce only needs remembering while its request's timestamp is still accepted:
/// timestamps are valid ±<c>window</c>, so keeping each nonce twice the window from first sight
/// covers every replay the timestamp check would let through.
/// </summary>
internal sealed class NonceCache(TimeProvider time, TimeSpan timestampWindow)
{
    private readonly ConcurrentDictionary<string, DateTimeOffset> seenUntil = new(StringComparer.Ordinal);
    private long insertsSincePurge;

    /// <summary>Records the nonce; false when it was already used inside the window.</summary>
    public bool TryUse(string accessKeyId, string nonce)
    {
        var now = time.GetUtcNow();
        var key = accessKeyId + "\n" + nonce;
        var keepUntil = now + timestampWindow + timestampWindow;
        if (Interlocked.Increment(ref insertsSincePurge) % 1024 == 0)
        {
            Purge(now);
        }
        while (true)
        {
            if (seenUntil.TryAdd(key, keepUntil))
            {
                return true;
            }
            if (seenUntil.TryGetValue(key, out var existing))
            {
                if (existing > now)
                {
                    return false;
                }
                // Expired entry: replace it atomically, then the nonce counts as fresh.
                if (seenUntil.TryUpdate(key, keepUntil, existing))
                {
                    return true;
                }
            }
        }
    }

    private void Purge(DateTimeOffset now)
    {
        foreach (var entry in seenUntil)
        {
            if (entry.Value <= now)
            {
                seenUntil.TryRemove(entry);
            }
        }
    }
}
