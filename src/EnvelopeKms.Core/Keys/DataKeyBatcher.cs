namespace EnvelopeKms.Keys;

/// <summary>
/// How long one data key may serve a batch of files before a new one is fetched. Each file derives its own key
/// from the data key and a fresh 32-byte message id (docs/format.md §5), so reuse is cryptographically safe; the
/// limits bound how much one leaked data key would expose, and how stale a key may get.
/// </summary>
public sealed record DataKeyReuseLimits
{
    public static DataKeyReuseLimits Default { get; } = new();

    /// <summary>One data key per file: no reuse at all.</summary>
    public static DataKeyReuseLimits PerFile { get; } = new() { MaxFiles = 1 };

    /// <summary>Files one data key may encrypt.</summary>
    public int MaxFiles { get; init; } = 20_000;

    /// <summary>Plaintext bytes one data key may encrypt (checked before each file starts).</summary>
    public long MaxBytes { get; init; } = 64L << 30;

    /// <summary>How long after it was generated a data key may start a new file.</summary>
    public TimeSpan MaxAge { get; init; } = TimeSpan.FromMinutes(5);
}

/// <summary>A data key lent to one file; disposing it returns it to the batcher.</summary>
public sealed class DataKeyLease : IDisposable
{
    private readonly DataKeyBatcher.Entry _entry;
    private int _released;

    internal DataKeyLease(DataKeyBatcher.Entry entry) => _entry = entry;

    public DataKey Key => _entry.Key;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0) _entry.Release();
    }
}

/// <summary>
/// Shares one KMS data key across the files of a pipeline (one <c>GenerateDataKey</c> per batch instead of one per
/// file), within <see cref="DataKeyReuseLimits"/>. Thread-safe: concurrent first callers wait for the same KMS call.
/// A data key is wiped as soon as it is retired and no file still uses it, and all are wiped on dispose.
/// </summary>
public sealed class DataKeyBatcher : IDisposable
{
    private readonly IDataKeyProvider _provider;
    private readonly IReadOnlyList<string> _keyIds;
    private readonly EncryptionContext _context;
    private readonly DataKeyReuseLimits _limits;
    private readonly TimeProvider _time;
    private readonly object _lock = new();
    private Task<Entry>? _current;
    private bool _currentFailureReported;
    private bool _disposed;

    public DataKeyBatcher(IDataKeyProvider provider, IReadOnlyList<string> keyIds, EncryptionContext context,
        DataKeyReuseLimits? limits = null, TimeProvider? time = null)
    {
        _provider = provider;
        _keyIds = keyIds;
        _context = context;
        _limits = limits ?? DataKeyReuseLimits.Default;
        _time = time ?? TimeProvider.System;
    }

    private int _dataKeysGenerated;

    /// <summary>Number of data keys fetched so far.</summary>
    public int DataKeysGenerated => Volatile.Read(ref _dataKeysGenerated);

    /// <summary>
    /// Starts fetching the batch's first data key now, so that the KMS round trip overlaps whatever the caller does
    /// next (binding and queueing the pipeline's files) instead of delaying the first file. A failure is reported
    /// to the first file that needs the key.
    /// </summary>
    public void Prefetch(CancellationToken cancellationToken)
    {
        if (_limits.MaxFiles == 1) return;
        Task<Entry> started;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_current is not null) return;
            started = _current = GenerateAsync(cancellationToken);
            _currentFailureReported = false;
            Interlocked.Increment(ref _dataKeysGenerated);
        }
        // Observed here so that a prefetch nobody waits for (an empty pipeline) is not an unobserved exception.
        started.ContinueWith(static t => _ = t.Exception, CancellationToken.None,
            TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    /// <summary>Lends a data key for one file of <paramref name="plaintextBytes"/> bytes (the caller disposes the lease).</summary>
    public async Task<DataKeyLease> AcquireAsync(long plaintextBytes, CancellationToken cancellationToken)
    {
        if (_limits.MaxFiles == 1)
        {
            // One key per file: nothing to share, so concurrent files fetch their keys concurrently (waiting for a
            // shared fetch would serialise every KMS call, and every retry, of the batch).
            lock (_lock) ObjectDisposedException.ThrowIf(_disposed, this);
            Interlocked.Increment(ref _dataKeysGenerated);
            var own = await GenerateAsync(cancellationToken).ConfigureAwait(false);
            lock (_lock)
            {
                own.TryReserve(plaintextBytes, _limits, _time.GetUtcNow());
                own.Retire(); // wiped when the lease is released
            }
            return new DataKeyLease(own);
        }
        while (true)
        {
            Task<Entry> current;
            lock (_lock)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                // A failed fetch is reported to the first file that waits on it, then retried by the next one.
                if (_current is null || ((_current.IsFaulted || _current.IsCanceled) && _currentFailureReported))
                {
                    _current = GenerateAsync(cancellationToken);
                    _currentFailureReported = false;
                    Interlocked.Increment(ref _dataKeysGenerated);
                }
                current = _current;
            }
            Entry entry;
            try
            {
                entry = await current.ConfigureAwait(false);
            }
            catch
            {
                lock (_lock) if (ReferenceEquals(_current, current)) _currentFailureReported = true;
                throw;
            }
            lock (_lock)
            {
                if (entry.TryReserve(plaintextBytes, _limits, _time.GetUtcNow()))
                    return new DataKeyLease(entry);
                // Retire it: files already using it finish, then it is wiped.
                if (ReferenceEquals(_current, current)) _current = null;
                entry.Retire();
            }
        }
    }

    private async Task<Entry> GenerateAsync(CancellationToken cancellationToken)
    {
        var key = await _provider.GenerateDataKeyAsync(_keyIds, _context, cancellationToken).ConfigureAwait(false);
        return new Entry(key, _time.GetUtcNow(), _lock);
    }

    public void Dispose()
    {
        Task<Entry>? current;
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
            current = _current;
            _current = null;
        }
        if (current is { IsCompletedSuccessfully: true }) current.Result.Retire();
        else current?.ContinueWith(t => { if (t.IsCompletedSuccessfully) t.Result.Retire(); }, TaskScheduler.Default);
    }

    /// <summary>One data key and its usage; guarded by the batcher's lock.</summary>
    internal sealed class Entry(DataKey key, DateTimeOffset created, object gate)
    {
        private int _files;
        private long _bytes;
        private int _leases;
        private bool _retired;

        public DataKey Key { get; } = key;

        public bool TryReserve(long bytes, DataKeyReuseLimits limits, DateTimeOffset now)
        {
            if (_retired || _files >= limits.MaxFiles || now - created > limits.MaxAge) return false;
            if (_files > 0 && _bytes + bytes > limits.MaxBytes) return false;
            _files++;
            _bytes += bytes;
            _leases++;
            return true;
        }

        public void Release()
        {
            lock (gate)
            {
                _leases--;
                if (_retired && _leases == 0) Key.Dispose();
            }
        }

        public void Retire()
        {
            lock (gate)
            {
                _retired = true;
                if (_leases == 0) Key.Dispose();
            }
        }
    }
}
