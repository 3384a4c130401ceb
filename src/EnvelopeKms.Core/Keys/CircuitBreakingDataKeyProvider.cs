using System.Collections.Concurrent;

namespace EnvelopeKms.Keys;

/// <summary>
/// Keeps a batch from paying the full retry time once per file when the key service is down. When a call fails as
/// <see cref="KeyProviderError.Unavailable"/> (the KMS client has already spent its retries) and no other call has
/// succeeded since that call started, the circuit opens: for <see cref="Cooldown"/> every further call fails at once
/// with the same kind of error (one error per file, no KMS call). After the cooldown one call probes the service;
/// calls that arrive meanwhile wait for its outcome. A success closes the circuit, a failure opens it again.
/// Under partial failures (throttling, some 5xx) other calls keep succeeding, so the circuit stays closed.
/// There is one circuit per set of regions that a call's wrapped-key entries name (and one for generating keys):
/// a file's entries are unauthenticated, so a hostile file naming a region that cannot be reached opens only the
/// circuit of that region set, never the one of the genuine files of the batch (issue 18).
/// </summary>
public sealed class CircuitBreakingDataKeyProvider : IDataKeyProvider
{
    /// <summary>Default cooldown: long enough to fail a whole pipeline fast, short enough to recover within a batch.</summary>
    public static readonly TimeSpan DefaultCooldown = TimeSpan.FromSeconds(30);

    private readonly IDataKeyProvider _inner;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<string, Circuit> _circuits = new(StringComparer.Ordinal);
    private int _fastFailures;

    public CircuitBreakingDataKeyProvider(IDataKeyProvider inner, TimeSpan? cooldown = null, TimeProvider? time = null)
    {
        _inner = inner ?? throw new ArgumentNullException(nameof(inner));
        Cooldown = cooldown ?? DefaultCooldown;
        _time = time ?? TimeProvider.System;
    }

    public TimeSpan Cooldown { get; }

    /// <summary>Calls refused without asking the key service, because their circuit was open.</summary>
    public int FastFailures => Volatile.Read(ref _fastFailures);

    /// <summary>Whether any circuit is open now.</summary>
    public bool IsOpen => _circuits.Values.Any(c => c.IsOpen(_time));

    /// <summary>Generating keys uses the caller's own key ids, not a file's: one circuit for all of it.</summary>
    private const string GenerateScope = "generate";

    public Task<DataKey> GenerateDataKeyAsync(IReadOnlyList<string> keyIds, EncryptionContext context, CancellationToken cancellationToken)
        => RunAsync(GenerateScope, ct => _inner.GenerateDataKeyAsync(keyIds, context, ct), cancellationToken);

    public Task<DataKey> DecryptDataKeyAsync(IReadOnlyList<WrappedDataKey> entries, EncryptionContext context, CancellationToken cancellationToken)
        => RunAsync(ScopeOf(entries), ct => _inner.DecryptDataKeyAsync(entries, context, ct), cancellationToken);

    public Task<DataKey> GenerateDataKeyAsync(IReadOnlyList<string> keyIds, EncryptionContext context, int keyLength, CancellationToken cancellationToken)
        => RunAsync(GenerateScope, ct => _inner.GenerateDataKeyAsync(keyIds, context, keyLength, ct), cancellationToken);

    public Task<DataKey> DecryptDataKeyAsync(IReadOnlyList<WrappedDataKey> entries, EncryptionContext context, int keyLength, CancellationToken cancellationToken)
        => RunAsync(ScopeOf(entries), ct => _inner.DecryptDataKeyAsync(entries, context, keyLength, ct), cancellationToken);

    /// <summary>The regions the entries name (each entry is sent to its region's endpoint), in a canonical order.</summary>
    private static string ScopeOf(IReadOnlyList<WrappedDataKey> entries)
        => "decrypt\n" + string.Join("\n", entries.Select(e => e.Region.ToLowerInvariant()).Distinct().Order(StringComparer.Ordinal));

    private Task<DataKey> RunAsync(string scope, Func<CancellationToken, Task<DataKey>> call, CancellationToken cancellationToken)
        => _circuits.GetOrAdd(scope, _ => new Circuit()).RunAsync(this, call, cancellationToken);

    /// <summary>The state of one circuit; every field is guarded by the circuit's own lock.</summary>
    private sealed class Circuit
    {
        private readonly object _lock = new();
        private long _lastSuccess = long.MinValue; // TimeProvider timestamps
        private KeyProviderException? _openedBy;
        private DateTimeOffset _openUntil;
        private TaskCompletionSource? _probe;

        public bool IsOpen(TimeProvider time)
        {
            lock (_lock) return _openedBy is not null && time.GetUtcNow() < _openUntil;
        }

        public async Task<DataKey> RunAsync(CircuitBreakingDataKeyProvider owner, Func<CancellationToken, Task<DataKey>> call, CancellationToken cancellationToken)
        {
            var time = owner._time;
            while (true)
            {
                Task? waitFor = null;
                bool probing = false;
                lock (_lock)
                {
                    if (_openedBy is not null)
                    {
                        var now = time.GetUtcNow();
                        if (now < _openUntil)
                        {
                            Interlocked.Increment(ref owner._fastFailures);
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

                long started = time.GetTimestamp();
                try
                {
                    var key = await call(cancellationToken).ConfigureAwait(false);
                    lock (_lock)
                    {
                        _lastSuccess = Math.Max(_lastSuccess, time.GetTimestamp());
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
                            _openUntil = time.GetUtcNow() + owner.Cooldown;
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
    }

    private static KeyProviderException FastFailure(KeyProviderException cause, TimeSpan remaining)
        => new(KeyProviderError.Unavailable,
            $"Not calling KMS for another {Math.Ceiling(remaining.TotalSeconds):0} s: it just failed after all retries. {cause.Message}",
            cause.InnerException ?? cause);
}
