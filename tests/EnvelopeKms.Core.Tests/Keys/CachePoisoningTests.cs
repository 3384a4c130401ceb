using System.Security.Cryptography;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using Xunit;

namespace EnvelopeKms.Tests.Keys;

/// <summary>
/// Issue 18: <see cref="CachingDataKeyProvider"/> stored a key under the blob of a file's first entry even when a
/// later entry produced it. A crafted file whose first entry copies a genuine file's blob (under a region that
/// cannot unwrap it) and whose second entry is the attacker's own made every later genuine file of the pipeline
/// fail with a commitment mismatch. A key is cached only under the entry that unwrapped it.
/// </summary>
public class CachePoisoningTests
{
    private static readonly EncryptionContext Context = EncryptionContext.Create(new Dictionary<string, string> { ["app"] = "cache" });

    /// <summary>Unwraps known blobs, except in a region it cannot reach (as a KMS client would fail there).</summary>
    private sealed class RegionalKms(Dictionary<string, byte[]> keys) : IDataKeyProvider
    {
        public const string DeadRegion = "cn-dead";
        public int Calls;

        public Task<DataKey> GenerateDataKeyAsync(IReadOnlyList<string> keyIds, EncryptionContext context, CancellationToken cancellationToken)
            => throw new NotSupportedException();

        public Task<DataKey> DecryptDataKeyAsync(IReadOnlyList<WrappedDataKey> entries, EncryptionContext context, CancellationToken cancellationToken)
        {
            foreach (var entry in entries)
            {
                Interlocked.Increment(ref Calls);
                if (entry.Region != DeadRegion && keys.TryGetValue(entry.CiphertextBlob, out var key))
                    return Task.FromResult(new DataKey(key, entries, entry.KeyId) { UnwrappedFrom = entry });
            }
            throw new KeyProviderException(KeyProviderError.Unavailable, "Unreachable.");
        }
    }

    private static WrappedDataKey Entry(string blob, string region = "cn-test") => new(WrappedDataKey.AlibabaKmsProvider, "key-1", "v1", region, blob);

    private static async Task<byte[]> Encrypt(byte[] key, IReadOnlyList<WrappedDataKey> entries, byte[] plaintext)
    {
        using var dataKey = new DataKey(key, entries, "key-1");
        var output = new MemoryStream();
        await Envelope.EncryptAsync(new MemoryStream(plaintext), output, dataKey, Context);
        return output.ToArray();
    }

    [Fact]
    public async Task AKeyFromALaterEntry_IsNotCachedUnderTheFirstEntrysBlob()
    {
        byte[] genuineKey = RandomNumberGenerator.GetBytes(32), attackerKey = RandomNumberGenerator.GetBytes(32);
        var kms = new RegionalKms(new() { ["genuine-blob"] = genuineKey, ["attacker-blob"] = attackerKey });
        var genuine = await Encrypt(genuineKey, [Entry("genuine-blob")], "genuine"u8.ToArray());
        var crafted = await Encrypt(attackerKey, [Entry("genuine-blob", RegionalKms.DeadRegion), Entry("attacker-blob")], "crafted"u8.ToArray());

        using var cache = new CachingDataKeyProvider(kms);
        await Envelope.DecryptAsync(new MemoryStream(crafted), Stream.Null, cache);
        var output = new MemoryStream();
        await Envelope.DecryptAsync(new MemoryStream(genuine), output, cache);
        Assert.Equal("genuine"u8.ToArray(), output.ToArray());

        // The entry that did unwrap is cached: the crafted file again costs nothing more.
        int calls = kms.Calls;
        await Envelope.DecryptAsync(new MemoryStream(crafted), Stream.Null, cache);
        await Envelope.DecryptAsync(new MemoryStream(genuine), Stream.Null, cache);
        Assert.Equal(calls, kms.Calls);
    }

    [Fact]
    public async Task ConcurrentFilesWithTheSameEntries_StillShareOneCall()
    {
        byte[] key = RandomNumberGenerator.GetBytes(32);
        var kms = new RegionalKms(new() { ["blob"] = key });
        var file = await Encrypt(key, [Entry("blob")], "same"u8.ToArray());
        using var cache = new CachingDataKeyProvider(kms);
        await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => Task.Run(() => Envelope.DecryptAsync(new MemoryStream(file), Stream.Null, cache))));
        Assert.Equal(1, kms.Calls);
    }
}
