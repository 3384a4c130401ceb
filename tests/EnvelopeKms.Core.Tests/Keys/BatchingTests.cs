using EnvelopeKms.Keys;
using Xunit;

namespace EnvelopeKms.Tests.Keys;

public class BatchingTests
{
    private sealed class ManualTime : TimeProvider
    {
        public DateTimeOffset Now = DateTimeOffset.UnixEpoch;
        public override DateTimeOffset GetUtcNow() => Now;
    }

    [Fact]
    public async Task OneDataKeyServesManyFilesUntilTheFileLimit()
    {
        var provider = new InMemoryKeyProvider();
        using var batcher = new DataKeyBatcher(provider, ["k"], EncryptionContext.Empty, new DataKeyReuseLimits { MaxFiles = 100 });
        var leases = new List<DataKeyLease>();
        for (int i = 0; i < 250; i++) leases.Add(await batcher.AcquireAsync(10, default));
        Assert.Equal(3, provider.GenerateCalls);
        Assert.Equal(3, leases.Select(l => l.Key).Distinct().Count());
        var first = leases[0].Key;
        foreach (var lease in leases.Take(100)) lease.Dispose();
        Assert.True(first.IsDisposed); // retired and no longer used: wiped
        Assert.False(leases[^1].Key.IsDisposed);
        foreach (var lease in leases.Skip(100)) lease.Dispose();
    }

    [Fact]
    public async Task ByteAndAgeLimitsStartANewKey()
    {
        var provider = new InMemoryKeyProvider();
        var time = new ManualTime();
        using var batcher = new DataKeyBatcher(provider, ["k"], EncryptionContext.Empty,
            new DataKeyReuseLimits { MaxBytes = 1000, MaxAge = TimeSpan.FromMinutes(1) }, time);
        using (await batcher.AcquireAsync(600, default)) { }
        using (await batcher.AcquireAsync(300, default)) { }
        Assert.Equal(1, provider.GenerateCalls);
        using (await batcher.AcquireAsync(200, default)) { } // 1100 > 1000
        Assert.Equal(2, provider.GenerateCalls);
        time.Now += TimeSpan.FromMinutes(2);
        using (await batcher.AcquireAsync(1, default)) { }
        Assert.Equal(3, provider.GenerateCalls);
        // A single file larger than the byte limit still gets a (fresh) key.
        using (await batcher.AcquireAsync(5000, default)) { }
    }

    [Fact]
    public async Task PerFileLimitGivesEveryFileItsOwnKey()
    {
        var provider = new InMemoryKeyProvider();
        using var batcher = new DataKeyBatcher(provider, ["k"], EncryptionContext.Empty, DataKeyReuseLimits.PerFile);
        for (int i = 0; i < 5; i++) using (await batcher.AcquireAsync(1, default)) { }
        Assert.Equal(5, provider.GenerateCalls);
    }

    [Fact]
    public async Task ConcurrentFirstCallersShareOneKmsCallAndDisposeWipes()
    {
        var provider = new InMemoryKeyProvider();
        var batcher = new DataKeyBatcher(provider, ["k"], EncryptionContext.Empty);
        var leases = await Task.WhenAll(Enumerable.Range(0, 50).Select(_ => Task.Run(() => batcher.AcquireAsync(1, default))));
        Assert.Equal(1, provider.GenerateCalls);
        foreach (var lease in leases) lease.Dispose();
        var key = leases[0].Key;
        batcher.Dispose();
        Assert.True(key.IsDisposed);
        Assert.All(key.BufferForTests, b => Assert.Equal(0, b));
    }

    [Fact]
    public async Task TheDecryptCacheCallsKmsOncePerBlobAndWipesOnDispose()
    {
        var inner = new InMemoryKeyProvider();
        var a = inner.Add("blob-a", Bytes.Random(32, 1));
        var b = inner.Add("blob-b", Bytes.Random(32, 2));
        var cache = new CachingDataKeyProvider(inner);
        var keys = await Task.WhenAll(Enumerable.Range(0, 40).Select(i => Task.Run(() => cache.DecryptDataKeyAsync([i % 2 == 0 ? a : b], EncryptionContext.Empty, default))));
        Assert.Equal(2, inner.DecryptCalls);
        Assert.Equal(Bytes.Random(32, 1), keys[0].Plaintext.ToArray());
        // A different context is a different cache entry (KMS binds the context to the blob).
        using (await cache.DecryptDataKeyAsync([a], EncryptionContext.Create(new Dictionary<string, string> { ["x"] = "y" }), default)) { }
        Assert.Equal(3, inner.DecryptCalls);
        foreach (var k in keys) k.Dispose();
        cache.Dispose();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => cache.DecryptDataKeyAsync([a], EncryptionContext.Empty, default));
    }

    [Fact]
    public async Task AFailedUnwrapIsNotCached()
    {
        var inner = new InMemoryKeyProvider();
        var unknown = new WrappedDataKey("aliyun-kms", "k", "", "", "nope");
        using var cache = new CachingDataKeyProvider(inner);
        await Assert.ThrowsAsync<KeyProviderException>(() => cache.DecryptDataKeyAsync([unknown], EncryptionContext.Empty, default));
        inner.Add("nope", Bytes.Random(32, 3));
        using var key = await cache.DecryptDataKeyAsync([unknown], EncryptionContext.Empty, default);
        Assert.Equal(2, inner.DecryptCalls);
    }

    private sealed class FailingOnceProvider(IDataKeyProvider inner) : IDataKeyProvider
    {
        public int Calls;
        public Task<DataKey> GenerateDataKeyAsync(IReadOnlyList<string> keyIds, EncryptionContext context, CancellationToken cancellationToken)
            => Interlocked.Increment(ref Calls) == 1
                ? Task.FromException<DataKey>(new KeyProviderException(KeyProviderError.Unavailable, "down"))
                : inner.GenerateDataKeyAsync(keyIds, context, cancellationToken);
        public Task<DataKey> DecryptDataKeyAsync(IReadOnlyList<WrappedDataKey> entries, EncryptionContext context, CancellationToken cancellationToken)
            => inner.DecryptDataKeyAsync(entries, context, cancellationToken);
    }

    [Fact]
    public async Task APrefetchedKeyServesTheFirstFilesWithoutAnotherCall()
    {
        var provider = new InMemoryKeyProvider();
        using var batcher = new DataKeyBatcher(provider, ["k"], EncryptionContext.Empty);
        batcher.Prefetch(default);
        batcher.Prefetch(default);
        for (int i = 0; i < 3; i++) using (await batcher.AcquireAsync(1, default)) { }
        Assert.Equal(1, provider.GenerateCalls);
    }

    [Fact]
    public async Task AFailedPrefetchIsReportedOnceThenRetried()
    {
        var provider = new FailingOnceProvider(new InMemoryKeyProvider());
        using var batcher = new DataKeyBatcher(provider, ["k"], EncryptionContext.Empty);
        batcher.Prefetch(default);
        await Assert.ThrowsAsync<KeyProviderException>(() => batcher.AcquireAsync(1, default));
        using (await batcher.AcquireAsync(1, default)) { }
        Assert.Equal(2, provider.Calls);
    }

    [Fact]
    public async Task APrefetchNobodyUsesIsWipedOnDispose()
    {
        var tracked = SecretBuffers.StartTrackingForTests();
        var provider = new InMemoryKeyProvider();
        var batcher = new DataKeyBatcher(provider, ["k"], EncryptionContext.Empty);
        batcher.Prefetch(default);
        await Task.Delay(10); // the in-memory provider completes at once; give the continuation its turn
        batcher.Dispose();
        Assert.Equal(1, provider.GenerateCalls);
        Assert.NotEmpty(tracked);
        Assert.All(tracked, buffer => Assert.All(buffer, b => Assert.Equal(0, b)));
    }
}
