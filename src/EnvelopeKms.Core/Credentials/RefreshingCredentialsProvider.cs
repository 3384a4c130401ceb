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
    private AlibabaCloudCredentials? _cached;
    private DateTimeOffset _refreshAt;

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
        var cached = Volatile.Read(ref _cached);
        if (cached is not null && Now < _refreshAt) return cached;
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            cached = _cached;
            if (cached is not null && Now < _refreshAt) return cached;
            AlibabaCloudCredentials fresh;
            try
            {
                fresh = await FetchAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (CredentialsException) when (cached?.Expiration is { } e && Now < e)
            {
                return cached; // still valid for a while; the next call tries again
            }
            FetchCount++;
            var now = Now;
            if (fresh.Expiration is { } expiration)
            {
                var margin = TimeSpan.FromTicks(Math.Min(_margin.Ticks, Math.Max(0, (expiration - now).Ticks / 2)));
                _refreshAt = expiration - margin;
            }
            else
            {
                _refreshAt = DateTimeOffset.MaxValue;
            }
            Volatile.Write(ref _cached, fresh);
            return fresh;
        }
        finally
        {
            _lock.Release();
        }
    }

    public void Invalidate() => Volatile.Write(ref _cached, null);

    /// <summary>Fetches new credentials from the source.</summary>
    protected abstract Task<AlibabaCloudCredentials> FetchAsync(CancellationToken cancellationToken);

    public override string ToString() => SourceName;
}
