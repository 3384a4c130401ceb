namespace EnvelopeKms.Credentials;

/// <summary>
/// Base of the sources that hand out temporary credentials (STS AssumeRole, ECS RAM role, credentials URI). The
/// credentials are cached and fetched again once they are within the refresh margin of their expiry (the margin is
/// capped at half their lifetime so short-lived tokens are still used). If a refresh fails while the cached
/// credentials have not actually expired yet, those are used rather than failing the caller.
/// </summary>
public abstract class RefreshingCredentialsProvider : ICredentialsProvider
{
    private readonly SemaphoreSlim _lock = new(1, 1);
    private readonly TimeProvider _time;
    private readonly TimeSpan _margin;
    // Credentials and their refresh time live in one immutable object so a lock-free reader never pairs new
    // credentials with an old refresh time.
    private CacheEntry? _cache;

    protected RefreshingCredentialsProvider(TimeProvider? timeProvider, TimeSpan refreshMargin)
    {
        _time = timeProvider ?? TimeProvider.System;
        _margin = refreshMargin;
    }

    public abstract string SourceName { get; }

    /// <summary>How many times credentials were fetched from the source (for diagnostics and tests).</summary>
    public int FetchCount { get; private set; }

    protected DateTimeOffset Now => _time.GetUtcNow();

    public async ValueTask<AlibabaCloudCredentials> GetCredentialsAsync(CancellationToken cancellationToken)
    {
        var cache = Volatile.Read(ref _cache);
        if (cache is not null && Now < cache.RefreshAt) return cache.Credentials;
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            cache = _cache;
            if (cache is not null && Now < cache.RefreshAt) return cache.Credentials;
            AlibabaCloudCredentials fresh;
            try
            {
                fresh = await FetchAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (CredentialsException) when (cache?.Credentials.Expiration is { } e && Now < e)
            {
                return cache.Credentials; // still valid for a while; the next call tries again
            }
            FetchCount++;
            var refreshAt = DateTimeOffset.MaxValue;
            if (fresh.Expiration is { } expiration)
            {
                var margin = TimeSpan.FromTicks(Math.Min(_margin.Ticks, Math.Max(0, (expiration - Now).Ticks / 2)));
                refreshAt = expiration - margin;
            }
            Volatile.Write(ref _cache, new CacheEntry(fresh, refreshAt));
            return fresh;
        }
        finally
        {
            _lock.Release();
        }
    }

    public void Invalidate() => Volatile.Write(ref _cache, null);

    /// <summary>Fetches new credentials from the source.</summary>
    protected abstract Task<AlibabaCloudCredentials> FetchAsync(CancellationToken cancellationToken);

    public override string ToString() => SourceName;

    private sealed class CacheEntry
    {
        public CacheEntry(AlibabaCloudCredentials credentials, DateTimeOffset refreshAt)
        {
            Credentials = credentials;
            RefreshAt = refreshAt;
        }

        public AlibabaCloudCredentials Credentials { get; }
        public DateTimeOffset RefreshAt { get; }
    }
}
