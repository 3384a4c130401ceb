using EnvelopeKms.Keys;
using Xunit;

namespace EnvelopeKms.Tests.Keys;

/// <summary>
/// Issue 18: the circuit breaker was one for the whole batch, so a hostile file naming an unreachable region
/// opened it and every genuine file failed fast. There is one circuit per set of regions a call's entries name.
/// </summary>
public class CircuitScopeTests
{
    /// <summary>Unwraps known blobs; an entry in <see cref="Dead"/> fails as unreachable after its retries.</summary>
    private sealed class RegionalKms(InMemoryKeyProvider inner) : IDataKeyProvider
    {
        public const string Dead = "cn-unreachable";
        public int Calls;

        public Task<DataKey> GenerateDataKeyAsync(IReadOnlyList<string> keyIds, EncryptionContext context, CancellationToken cancellationToken)
            => inner.GenerateDataKeyAsync(keyIds, context, cancellationToken);

        public Task<DataKey> DecryptDataKeyAsync(IReadOnlyList<WrappedDataKey> entries, EncryptionContext context, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref Calls);
            if (entries.All(e => e.Region == Dead)) throw new KeyProviderException(KeyProviderError.Unavailable, "Could not reach kms.cn-unreachable.");
            return inner.DecryptDataKeyAsync(entries.Where(e => e.Region != Dead).ToList(), context, cancellationToken);
        }
    }

    [Fact]
    public async Task AnUnreachableRegionOpensOnlyItsOwnCircuit()
    {
        var memory = new InMemoryKeyProvider();
        var kms = new RegionalKms(memory);
        var breaker = new CircuitBreakingDataKeyProvider(kms, TimeSpan.FromSeconds(30));
        var genuine = memory.Add("genuine", new byte[32]);
        var hostile = genuine with { Region = RegionalKms.Dead, CiphertextBlob = "hostile" };

        for (int i = 0; i < 2; i++)
            await Assert.ThrowsAsync<KeyProviderException>(() => breaker.DecryptDataKeyAsync([hostile], EncryptionContext.Empty, default));
        Assert.Equal(1, breaker.FastFailures); // the second hostile file fails fast: that region is down
        Assert.True(breaker.IsOpen);

        for (int i = 0; i < 3; i++)
        {
            using var key = await breaker.DecryptDataKeyAsync([genuine], EncryptionContext.Empty, default);
        }
        Assert.Equal(1, breaker.FastFailures);
        Assert.Equal(4, kms.Calls);
    }

    [Fact]
    public async Task FilesNamingTheSameRegions_ShareACircuit_WhateverTheOrder()
    {
        var kms = new RegionalKms(new InMemoryKeyProvider());
        var breaker = new CircuitBreakingDataKeyProvider(kms, TimeSpan.FromSeconds(30));
        WrappedDataKey Entry(string region, string blob) => new(WrappedDataKey.AlibabaKmsProvider, "k", "", region, blob);
        await Assert.ThrowsAsync<KeyProviderException>(() => breaker.DecryptDataKeyAsync([Entry(RegionalKms.Dead, "a")], EncryptionContext.Empty, default));
        var e = await Assert.ThrowsAsync<KeyProviderException>(() => breaker.DecryptDataKeyAsync([Entry("CN-UNREACHABLE", "b"), Entry(RegionalKms.Dead, "c")], EncryptionContext.Empty, default));
        Assert.Contains("Not calling KMS", e.Message);
        Assert.Equal(1, kms.Calls);
    }
}
