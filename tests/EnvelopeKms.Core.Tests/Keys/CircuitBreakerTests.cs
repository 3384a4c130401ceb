using EnvelopeKms.Keys;
using Xunit;

namespace EnvelopeKms.Tests.Keys;

public class CircuitBreakerTests
{
    private sealed class ManualTime : TimeProvider
    {
        public DateTimeOffset Now = DateTimeOffset.UnixEpoch;
        public long Ticks;
        public override DateTimeOffset GetUtcNow() => Now;
        public override long GetTimestamp() => Ticks;
        public void Advance(TimeSpan by) { Now += by; Ticks += by.Ticks; }
    }

    /// <summary>A provider that fails as Unavailable while <see cref="Down"/>, after "spending" its retry time.</summary>
    private sealed class FlakyProvider(ManualTime time) : IDataKeyProvider
    {
        private readonly InMemoryKeyProvider _inner = new();
        public bool Down = true;
        public int Calls;

        public Task<DataKey> GenerateDataKeyAsync(IReadOnlyList<string> keyIds, EncryptionContext context, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref Calls);
            time.Advance(TimeSpan.FromSeconds(3)); // the client's retries
            if (Down) throw new KeyProviderException(KeyProviderError.Unavailable, "KMS GenerateDataKey could not reach http://127.0.0.1:1/.");
            return _inner.GenerateDataKeyAsync(keyIds, context, cancellationToken);
        }

        public Task<DataKey> DecryptDataKeyAsync(IReadOnlyList<WrappedDataKey> entries, EncryptionContext context, CancellationToken cancellationToken)
            => throw new NotSupportedException();
    }

    [Fact]
    public async Task ADeadServiceIsAskedOnceThenEveryFileFailsFastWithItsOwnError()
    {
        var time = new ManualTime();
        var flaky = new FlakyProvider(time);
        var breaker = new CircuitBreakingDataKeyProvider(flaky, TimeSpan.FromSeconds(30), time);
        using var batcher = new DataKeyBatcher(breaker, ["k"], EncryptionContext.Empty, DataKeyReuseLimits.PerFile, time);

        var errors = new List<KeyProviderException>();
        for (int i = 0; i < 100; i++)
            errors.Add(await Assert.ThrowsAsync<KeyProviderException>(() => batcher.AcquireAsync(1, default)));

        Assert.Equal(1, flaky.Calls);
        Assert.All(errors, e => Assert.Equal(KeyProviderError.Unavailable, e.Error));
        Assert.Equal(99, breaker.FastFailures);
        Assert.Contains("Not calling KMS", errors[1].Message);
        Assert.Contains("could not reach", errors[1].Message);
        Assert.True(breaker.IsOpen);

        // After the cooldown one call probes; the service is back, so the circuit closes.
        time.Advance(TimeSpan.FromSeconds(31));
        flaky.Down = false;
        using (await batcher.AcquireAsync(1, default)) { }
        using (await batcher.AcquireAsync(1, default)) { }
        Assert.False(breaker.IsOpen);
        Assert.Equal(3, flaky.Calls);
    }

    [Fact]
    public async Task AProbeThatFailsOpensTheCircuitAgain()
    {
        var time = new ManualTime();
        var flaky = new FlakyProvider(time);
        var breaker = new CircuitBreakingDataKeyProvider(flaky, TimeSpan.FromSeconds(30), time);
        await Assert.ThrowsAsync<KeyProviderException>(() => breaker.GenerateDataKeyAsync(["k"], EncryptionContext.Empty, default));
        time.Advance(TimeSpan.FromSeconds(31));
        await Assert.ThrowsAsync<KeyProviderException>(() => breaker.GenerateDataKeyAsync(["k"], EncryptionContext.Empty, default));
        Assert.Equal(2, flaky.Calls);
        await Assert.ThrowsAsync<KeyProviderException>(() => breaker.GenerateDataKeyAsync(["k"], EncryptionContext.Empty, default));
        Assert.Equal(2, flaky.Calls);
        Assert.Equal(1, breaker.FastFailures);
    }

    [Fact]
    public async Task AFailureWhileOtherCallsSucceedDoesNotOpenTheCircuit()
    {
        // A flaky (throttled) service: one call exhausts its retries, but another succeeded meanwhile.
        var time = new ManualTime();
        var inner = new InMemoryKeyProvider();
        var gate = new TaskCompletionSource();
        var provider = new DelegateProvider(async (n) =>
        {
            if (n == 0) { await gate.Task; time.Advance(TimeSpan.FromSeconds(1)); throw new KeyProviderException(KeyProviderError.Unavailable, "throttled"); }
            time.Advance(TimeSpan.FromMilliseconds(10));
            return await inner.GenerateDataKeyAsync(["k"], EncryptionContext.Empty, default);
        });
        var breaker = new CircuitBreakingDataKeyProvider(provider, TimeSpan.FromSeconds(30), time);
        var failing = breaker.GenerateDataKeyAsync(["k"], EncryptionContext.Empty, default);
        using (await breaker.GenerateDataKeyAsync(["k"], EncryptionContext.Empty, default)) { }
        gate.SetResult();
        await Assert.ThrowsAsync<KeyProviderException>(() => failing);
        Assert.False(breaker.IsOpen);
        using (await breaker.GenerateDataKeyAsync(["k"], EncryptionContext.Empty, default)) { }
    }

    [Fact]
    public async Task RefusalsAndOtherErrorsNeverOpenTheCircuit()
    {
        var provider = new DelegateProvider(_ => throw new KeyProviderException(KeyProviderError.Refused, "disabled"));
        var breaker = new CircuitBreakingDataKeyProvider(provider);
        for (int i = 0; i < 3; i++)
            await Assert.ThrowsAsync<KeyProviderException>(() => breaker.GenerateDataKeyAsync(["k"], EncryptionContext.Empty, default));
        Assert.Equal(3, provider.Calls);
        Assert.False(breaker.IsOpen);
    }

    private sealed class DelegateProvider(Func<int, Task<DataKey>> generate) : IDataKeyProvider
    {
        public int Calls;
        public Task<DataKey> GenerateDataKeyAsync(IReadOnlyList<string> keyIds, EncryptionContext context, CancellationToken cancellationToken)
            => generate(Interlocked.Increment(ref Calls) - 1);
        public Task<DataKey> DecryptDataKeyAsync(IReadOnlyList<WrappedDataKey> entries, EncryptionContext context, CancellationToken cancellationToken)
            => throw new NotSupportedException();
    }
}
