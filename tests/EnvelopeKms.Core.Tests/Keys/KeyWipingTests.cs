using System.Collections.Concurrent;
using System.Security.Cryptography;
using EnvelopeKms.Files;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using EnvelopeKms.Kms;
using EnvelopeKms.Tests.Kms;
using Xunit;

namespace EnvelopeKms.Tests.Keys;

/// <summary>
/// Plaintext data keys, file keys and the KMS client's plaintext buffers are wiped after use. The core reports every
/// array it allocates for key material to <see cref="SecretBuffers"/>; these tests install a tracker for their own
/// async flow, run an operation (successful or failing), release what the caller owns, and prove every tracked array
/// is all zeros. A recording key provider also checks the <see cref="DataKey"/> objects themselves.
/// </summary>
public class KeyWipingTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    /// <summary>Wraps a provider and keeps every data key it hands out.</summary>
    private sealed class RecordingProvider(IDataKeyProvider inner) : IDataKeyProvider
    {
        public ConcurrentQueue<DataKey> Issued { get; } = new();

        public async Task<DataKey> GenerateDataKeyAsync(IReadOnlyList<string> keyIds, EncryptionContext context, CancellationToken cancellationToken)
        {
            var key = await inner.GenerateDataKeyAsync(keyIds, context, cancellationToken);
            Issued.Enqueue(key);
            return key;
        }

        public async Task<DataKey> DecryptDataKeyAsync(IReadOnlyList<WrappedDataKey> entries, EncryptionContext context, CancellationToken cancellationToken)
        {
            var key = await inner.DecryptDataKeyAsync(entries, context, cancellationToken);
            Issued.Enqueue(key);
            return key;
        }
    }

    internal static void AssertAllWiped(ConcurrentQueue<byte[]> tracked, int atLeast = 1)
    {
        Assert.True(tracked.Count >= atLeast, $"only {tracked.Count} secret buffers were tracked");
        int i = 0;
        foreach (var buffer in tracked)
        {
            Assert.True(buffer.AsSpan().IndexOfAnyExcept((byte)0) < 0, $"secret buffer {i} of {tracked.Count} ({buffer.Length} bytes) was not wiped");
            i++;
        }
    }

    private static void AssertWiped(IEnumerable<DataKey> keys)
    {
        foreach (var key in keys)
        {
            Assert.True(key.IsDisposed);
            Assert.True(key.BufferForTests.AsSpan().IndexOfAnyExcept((byte)0) < 0, "a data key was not wiped");
        }
    }

    private async Task<string> EncryptedFile(InMemoryKeyProvider provider, byte[] plaintext, EncryptionContext? context = null)
    {
        string source = _dir.File(Guid.NewGuid().ToString("N"));
        await File.WriteAllBytesAsync(source, plaintext);
        using (var key = await provider.GenerateDataKeyAsync(["k1"], context ?? EncryptionContext.Empty, default))
            await EnvelopeFileOperations.EncryptFileAsync(source, source + ".ekms", key, context ?? EncryptionContext.Empty);
        return source + ".ekms";
    }

    [Fact]
    public async Task TheTrackerSeesAKeyThatWasNotWiped()
    {
        var tracked = SecretBuffers.StartTrackingForTests();
        var key = new DataKey(RandomNumberGenerator.GetBytes(32), []);
        Assert.Contains(key.BufferForTests, tracked);
        Assert.ThrowsAny<Exception>(() => AssertAllWiped(tracked));
        key.Dispose();
        AssertAllWiped(tracked);
        await Task.CompletedTask;
    }

    [Fact]
    public async Task EncryptAndDecryptFile_WipeTheDataKeyAndEveryFileKey()
    {
        var memory = new InMemoryKeyProvider();
        var tracked = SecretBuffers.StartTrackingForTests();
        var provider = new RecordingProvider(memory);
        string source = _dir.File("plain");
        await File.WriteAllBytesAsync(source, Bytes.Random(200_000, 1));
        using (var key = await provider.GenerateDataKeyAsync(["k1"], EncryptionContext.Empty, default))
        {
            await EnvelopeFileOperations.EncryptFileAsync(source, source + ".ekms", key, EncryptionContext.Empty);
            Assert.False(key.IsDisposed); // the caller's key stays usable until the caller disposes it
        }
        await EnvelopeFileOperations.DecryptFileAsync(source + ".ekms", _dir.File("back"), provider);
        await EnvelopeFileOperations.VerifyFileAsync(source + ".ekms", provider);
        Assert.Equal(3, provider.Issued.Count);
        AssertWiped(provider.Issued);
        AssertAllWiped(tracked, atLeast: 3 + 4); // 3 data keys, and file keys for encrypt, decrypt (unwrap + body) and verify
    }

    [Fact]
    public async Task FailedDecryptions_WipeEveryKeyTheyUnwrapped()
    {
        var memory = new InMemoryKeyProvider();
        var context = EncryptionContext.Create(new Dictionary<string, string> { ["a"] = "b" });
        string good = await EncryptedFile(memory, Bytes.Random(10_000, 2), context);
        var bytes = await File.ReadAllBytesAsync(good);

        var tracked = SecretBuffers.StartTrackingForTests();
        var provider = new RecordingProvider(memory);
        // A tampered frame: the key unwraps and authenticates the header, then the body fails.
        var tampered = (byte[])bytes.Clone();
        tampered[^5] ^= 1;
        await File.WriteAllBytesAsync(_dir.File("t.ekms"), tampered);
        await Assert.ThrowsAsync<EnvelopeException>(() => EnvelopeFileOperations.DecryptFileAsync(_dir.File("t.ekms"), _dir.File("t"), provider));
        // A substituted wrapped key: another file's entry unwraps to a key that does not commit.
        string other = await EncryptedFile(memory, [1, 2, 3], context);
        var otherHeader = await EnvelopeFileOperations.ReadHeaderAsync(other);
        var header = await EnvelopeFileOperations.ReadHeaderAsync(good);
        Assert.Equal(header.WrappedKeys[0].CiphertextBlob.Length, otherHeader.WrappedKeys[0].CiphertextBlob.Length);
        var swapped = System.Text.Encoding.ASCII.GetBytes(otherHeader.WrappedKeys[0].CiphertextBlob);
        var spliced = (byte[])bytes.Clone();
        var original = System.Text.Encoding.ASCII.GetBytes(header.WrappedKeys[0].CiphertextBlob);
        int replaced = 0;
        for (int at; (at = spliced.AsSpan().IndexOf(original)) >= 0; replaced++) swapped.CopyTo(spliced, at); // both v2 slots
        Assert.Equal(2, replaced);
        await File.WriteAllBytesAsync(_dir.File("s.ekms"), spliced);
        var e = await Assert.ThrowsAsync<EnvelopeException>(() => EnvelopeFileOperations.DecryptFileAsync(_dir.File("s.ekms"), _dir.File("s"), provider));
        Assert.Equal(EnvelopeError.KeyCommitmentMismatch, e.Error);
        // Cancellation in the middle of the body.
        using var cancel = new CancellationTokenSource();
        var progress = new ProgressCounter();
        string large = await EncryptedFile(memory, Bytes.Random(8 << 20, 3));
        var task = EnvelopeFileOperations.DecryptFileAsync(large, _dir.File("l"), provider, progress: progress, cancellationToken: cancel.Token);
        cancel.CancelAfter(5);
        try { await task; } catch (OperationCanceledException) { } // finishing first is fine too; both must wipe
        Assert.True(provider.Issued.Count >= 2);
        AssertWiped(provider.Issued);
        AssertAllWiped(tracked);
    }

    [Fact]
    public async Task TheBatcher_WipesARetiredKeyWhenItsLastFileIsDone_AndTheRestOnDispose()
    {
        var tracked = SecretBuffers.StartTrackingForTests();
        var provider = new RecordingProvider(new InMemoryKeyProvider());
        var batcher = new DataKeyBatcher(provider, ["k1"], EncryptionContext.Empty, new DataKeyReuseLimits { MaxFiles = 2 });
        var leases = new List<DataKeyLease>();
        for (int i = 0; i < 5; i++)
        {
            string source = _dir.File($"f{i}");
            await File.WriteAllBytesAsync(source, Bytes.Random(1000, i));
            var lease = await batcher.AcquireAsync(1000, default);
            await EnvelopeFileOperations.EncryptFileAsync(source, source + ".ekms", lease.Key, EncryptionContext.Empty);
            leases.Add(lease);
        }
        Assert.Equal(3, provider.Issued.Count);
        var first = provider.Issued.First();
        Assert.False(first.IsDisposed); // retired, but two files still hold it
        leases[0].Dispose();
        Assert.False(first.IsDisposed);
        leases[1].Dispose();
        AssertWiped([first]);
        foreach (var lease in leases) lease.Dispose();
        Assert.False(provider.Issued.Last().IsDisposed); // the current key serves the next file…
        batcher.Dispose();
        AssertWiped(provider.Issued); // …until the batcher is disposed
        AssertAllWiped(tracked);
    }

    /// <summary>
    /// Every key the cache got from the key service is wiped on dispose, including the ones it could not keep because
    /// it was full (those used to be copied for the caller and then left unwiped).
    /// </summary>
    [Fact]
    public async Task TheCache_WipesEveryUnwrappedKey_EvenBeyondItsCapacity()
    {
        var memory = new InMemoryKeyProvider();
        var tracked = SecretBuffers.StartTrackingForTests();
        var recording = new RecordingProvider(memory);
        var cache = new CachingDataKeyProvider(recording);
        var entries = Enumerable.Range(0, CachingDataKeyProvider.MaxEntries + 10)
            .Select(i => memory.Add($"blob-{i}", RandomNumberGenerator.GetBytes(32))).ToList();
        foreach (var entry in entries.Concat(entries.Take(5)))
        {
            using var copy = await cache.DecryptDataKeyAsync([entry], EncryptionContext.Empty, default);
        }
        Assert.Equal(CachingDataKeyProvider.MaxEntries + 10, recording.Issued.Count); // the 5 repeats were cache hits
        // The keys beyond the capacity are wiped as soon as the caller has its copy; the cached ones live on.
        Assert.Equal(10, recording.Issued.Count(k => k.IsDisposed));
        cache.Dispose();
        AssertWiped(recording.Issued);
        AssertAllWiped(tracked, atLeast: 2 * CachingDataKeyProvider.MaxEntries);
    }

    // ---- the KMS client and provider ---------------------------------------------------------------------------

    /// <summary>
    /// A stand-in KMS whose blobs are "blob:&lt;keyId&gt;:&lt;base64 key&gt;" (so Decrypt can give the key back), with a
    /// hook to answer Decrypt with something hostile.
    /// </summary>
    private static LocalHttpServer StubKms(Func<string, StubResponse?>? decrypt = null)
        => new(r =>
        {
            var p = r.AllParameters;
            switch (r.Header("x-acs-action"))
            {
                case "GenerateDataKey":
                {
                    var key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
                    return StubResponse.Json($"{{\"KeyId\":\"{p["KeyId"]}\",\"KeyVersionId\":\"v\",\"CiphertextBlob\":\"blob:{p["KeyId"]}:{key}\",\"Plaintext\":\"{key}\",\"RequestId\":\"r\"}}");
                }
                case "Encrypt":
                    return StubResponse.Json($"{{\"KeyId\":\"{p["KeyId"]}\",\"KeyVersionId\":\"v\",\"CiphertextBlob\":\"blob:{p["KeyId"]}:{p["Plaintext"]}\",\"RequestId\":\"r\"}}");
                case "Decrypt":
                {
                    var parts = p["CiphertextBlob"].Split(':');
                    return decrypt?.Invoke(parts[1]) ?? StubResponse.Json(
                        $"{{\"KeyId\":\"{parts[1]}\",\"KeyVersionId\":\"v\",\"Plaintext\":\"{parts[2].Replace("+", "\\u002B")}\",\"RequestId\":\"r\"}}");
                }
                default:
                    return StubResponse.Error(404, "InvalidAction.NotFound");
            }
        });

    [Fact]
    public async Task TheKmsProviderAndClient_WipeThePlaintextTheirBase64AndTheBodies_AcrossTheWholeFileFlow()
    {
        await using var kms = StubKms();
        using var client = TestClients.For(kms);
        var tracked = SecretBuffers.StartTrackingForTests();
        var provider = new RecordingProvider(new KmsDataKeyProvider(client));
        string source = _dir.File("data");
        await File.WriteAllBytesAsync(source, Bytes.Random(100_000, 4));

        using (var batcher = new DataKeyBatcher(provider, ["k1", "k2"], EncryptionContext.Empty)) // GenerateDataKey + Encrypt
        using (var lease = await batcher.AcquireAsync(100_000, default))
        {
            await EnvelopeFileOperations.EncryptFileAsync(source, source + ".ekms", lease.Key, EncryptionContext.Empty);
        }
        using (var cache = new CachingDataKeyProvider(provider))
        {
            await EnvelopeFileOperations.DecryptFileAsync(source + ".ekms", _dir.File("back"), cache);
            await EnvelopeFileOperations.VerifyFileAsync(source + ".ekms", cache);
        }
        Assert.Equal(await File.ReadAllBytesAsync(source), await File.ReadAllBytesAsync(_dir.File("back")));
        Assert.Equal(2, provider.Issued.Count); // one generated, one unwrapped (the verify was a cache hit)
        AssertWiped(provider.Issued);
        // Data keys, file keys, KMS plaintexts, their base64 text, the Encrypt body and every response body.
        AssertAllWiped(tracked, atLeast: 12);
    }

    [Theory]
    [InlineData("wrong length")]
    [InlineData("not allowed")]
    [InlineData("not base64")]
    [InlineData("kms error")]
    public async Task RejectedKmsAnswers_AreWipedToo(string answer)
    {
        var key16 = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));
        var key32 = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
        await using var kms = StubKms(keyId => answer switch
        {
            "wrong length" => StubResponse.Json($"{{\"KeyId\":\"{keyId}\",\"KeyVersionId\":\"v\",\"Plaintext\":\"{key16}\"}}"),
            "not allowed" => StubResponse.Json($"{{\"KeyId\":\"evil\",\"KeyVersionId\":\"v\",\"Plaintext\":\"{key32}\"}}"),
            "not base64" => StubResponse.Json($"{{\"KeyId\":\"{keyId}\",\"KeyVersionId\":\"v\",\"Plaintext\":\"{key32[..^4]}!!!!\"}}"),
            _ => StubResponse.Error(400, "InvalidParameter", $"bad blob {key32}"),
        });
        using var client = TestClients.For(kms);
        var tracked = SecretBuffers.StartTrackingForTests();
        var provider = new KmsDataKeyProvider(client, new KmsDataKeyProviderOptions { AllowedKeyIds = ["k1"] });
        var entry = new WrappedDataKey(WrappedDataKey.AlibabaKmsProvider, "k1", "v", "cn-test", $"blob:k1:{key32}");
        var e = await Assert.ThrowsAnyAsync<Exception>(() => provider.DecryptDataKeyAsync([entry], EncryptionContext.Empty, default));
        Assert.True(e is KeyProviderException, e.ToString());
        Assert.Equal(answer == "kms error" ? KeyProviderError.Refused : answer == "not base64" ? KeyProviderError.Unavailable : KeyProviderError.InvalidDataKey,
            ((KeyProviderException)e).Error);
        AssertAllWiped(tracked, atLeast: 2);
    }
}
