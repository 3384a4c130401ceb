namespace EnvelopeKms.Keys;

/// <summary>
/// Keeps a batch from paying the full retry time once per file when the key service is down. When a call fails as
/// <see cref="KeyProviderError.Unavailable"/> (the KMS client has already spent its retries) and no other call has
/// succeeded since that call started, the circuit opens: for <see cref="Cooldown"/> every further call fails at once
/// with the same kind of error (one error per file, no KMS call). After the cooldown one call probes the service;
/// calls that arrive meanwhile wait for its outcome. A success closes the circuit, a failure opens it again.
/// Under partial failures (throttling, some 5xx) other calls keep succeeding, so the circuit stays closed.
/// </summary>
public sealed class CircuitBreakingDataKeyProvider : IDataKeyProvider
{
    /// <summary>Default cooldown: long enough to fail a whole pipeline fast, short enough to recover within a batch.</summary>
    public static readonly TimeSpan DefaultCooldown = TimeSpan.FromSeconds(30);

    private readonly IDataKeyProvider _inner;
    private readonly TimeProvider _time;
    private readonly object _lock = new();
    private long _lastSuccess = long.MinValue; // TimeProvider timestamps
    private KeyProviderException? _openedBy;
    private DateTimeOffset _openUntil;
    private TaskCompletionSource? _probe;
    private int _fastFailures;

    public CircuitBreakingDataKeyProvider(IDataKeyProvider inner, TimeSpan? cooldown = null, TimeProvider? time = null)
    {
        _inner = inner ?? throw new ArgumentNullException(nameof(inner));
        Cooldown = cooldown ?? DefaultCooldown;
        _time = time ?? TimeProvider.System;
    }

    public TimeSpan Cooldown { get; }

    /// <summary>Calls refused without asking the key service, because the circuit was open.</summary>
    public int FastFailures => Volatile.Read(ref _fastFailures);

    /// <summary>Whether the circuit is open now.</summary>
    public bool IsOpen
    {
        get { lock (_lock) return _openedBy is not null && _time.GetUtcNow() < _openUntil; }
    }

    public Task<DataKey> GenerateDataKeyAsync(IReadOnlyList<string> keyIds, EncryptionContext context, CancellationToken cancellationToken)
        => RunAsync(ct => _inner.GenerateDataKeyAsync(keyIds, context, ct), cancellationToken);

    public Task<DataKey> DecryptDataKeyAsync(IReadOnlyList<WrappedDataKey> entries, EncryptionContext context, CancellationToken cancellationToken)
        => RunAsync(ct => _inner.DecryptDataKeyAsync(entries, context, ct), cancellationToken);

    public Task<DataKey> GenerateDataKeyAsync(IReadOnlyList<string> keyIds, EncryptionContext context, int keyLength, CancellationToken cancellationToken)
        => RunAsync(ct => _inner.GenerateDataKeyAsync(keyIds, context, keyLength, ct), cancellationToken);

    public Task<DataKey> DecryptDataKeyAsync(IReadOnlyList<WrappedDataKey> entries, EncryptionContext context, int keyLength, CancellationToken cancellationToken)
        => RunAsync(ct => _inner.DecryptDataKeyAsync(entries, context, keyLength, ct), cancellationToken);

    private async Task<DataKey> RunAsync(Func<CancellationToken, Task<DataKey>> call, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task? waitFor = null;
            bool probing = false;
            lock (_lock)
            {
                if (_openedBy is not null)
                {
                    var now = _time.GetUtcNow();
                    if (now < _openUntil)
                    {
                        Interlocked.Increment(ref _fastFailures);
                        throw FastFailure(_openedBy, _openUntil - now);
                    }
                    if (_probe is null)
                    {
                        _probe = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                        probing = true;
                    }
                    else waitFor = _probe.Task;
                }
            }
            if (waitFor is not null)
            {
                await waitFor.WaitAsync(cancellationToken).ConfigureAwait(false);
                continue;
            }

            long started = _time.GetTimestamp();
            try
            {
                var key = await call(cancellationToken).ConfigureAwait(false);
                lock (_lock)
                {
                    _lastSuccess = Math.Max(_lastSuccess, _time.GetTimestamp());
                    _openedBy = null;
                    if (probing) EndProbe();
                }
                return key;
            }
            catch (KeyProviderException e) when (e.Error == KeyProviderError.Unavailable && !cancellationToken.IsCancellationRequested)
            {
                lock (_lock)
                {
                    // Open only if nothing succeeded while this call was retrying: a flaky service still serves others.
                    if (probing || _lastSuccess < started)
                    {
                        _openedBy = e;
                        _openUntil = _time.GetUtcNow() + Cooldown;
                    }
                    if (probing) EndProbe();
                }
                throw;
            }
            catch
            {
                if (probing) lock (_lock) EndProbe();
                throw;
            }
        }
    }

    private void EndProbe()
    {
        var probe = _probe;
        _probe = null;
        probe?.TrySetResult();
    }

    private static KeyProviderException FastFailure(KeyProviderException cause, TimeSpan remaining)
        => new(KeyProviderError.Unavailable,
            $"Not calling KMS for another {Math.Ceiling(remaining.TotalSeconds):0} s: it just failed after all retries. {cause.Message}",
            cause.InnerException ?? cause);
}
