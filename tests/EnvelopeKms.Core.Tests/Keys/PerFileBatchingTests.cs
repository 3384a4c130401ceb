using EnvelopeKms.Keys;
using Xunit;

namespace EnvelopeKms.Tests.Keys;

public class PerFileBatchingTests
{
    private sealed class GatedProvider : IDataKeyProvider
    {
        private readonly InMemoryKeyProvider _inner = new();
        public readonly TaskCompletionSource Gate = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public int InFlight;

        public async Task<DataKey> GenerateDataKeyAsync(IReadOnlyList<string> keyIds, EncryptionContext context, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref InFlight);
            await Gate.Task;
            return await _inner.GenerateDataKeyAsync(keyIds, context, cancellationToken);
        }

        public Task<DataKey> DecryptDataKeyAsync(IReadOnlyList<WrappedDataKey> entries, EncryptionContext context, CancellationToken cancellationToken)
            => throw new NotSupportedException();
    }

    [Fact]
    public async Task PerFileKeysAreFetchedConcurrentlyAndWipedWhenReleased()
    {
        // A slow (retrying) KMS call for one file must not hold up the others' calls.
        var provider = new GatedProvider();
        using var batcher = new DataKeyBatcher(provider, ["k"], EncryptionContext.Empty, DataKeyReuseLimits.PerFile);
        var pending = Enumerable.Range(0, 8).Select(_ => batcher.AcquireAsync(1, default)).ToList();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (Volatile.Read(ref provider.InFlight) < 8 && DateTime.UtcNow < deadline) await Task.Delay(10);
        Assert.Equal(8, Volatile.Read(ref provider.InFlight));
        provider.Gate.SetResult();
        var leases = await Task.WhenAll(pending);
        Assert.Equal(8, leases.Select(l => l.Key).Distinct().Count());
        Assert.Equal(8, batcher.DataKeysGenerated);
        foreach (var lease in leases)
        {
            Assert.False(lease.Key.IsDisposed);
            lease.Dispose();
            Assert.True(lease.Key.IsDisposed);
        }
    }
}
