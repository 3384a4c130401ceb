using System.Security.Cryptography;
using EnvelopeKms.AlibabaSdk;
using EnvelopeKms.Files;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using EnvelopeKms.Legacy;
using Xunit;

namespace EnvelopeKms.Tests.AlibabaSdk;

/// <summary>Round trips through the stream API and the file operations, argument checks, atomic outputs and wiping.</summary>
public class AlibabaSdkRoundTripTests : IDisposable
{
    private const string Arn1 = "acs:kms:cn-hangzhou:1234567890:key/key-one";
    private const string Arn2 = "acs:kms:cn-shanghai:1234567890:key/key-two";
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    private static readonly EncryptionContext Context = EncryptionContext.Create(new Dictionary<string, string>
    {
        ["project"] = "Apollo",
        ["ключ"] = "значение",
        ["\uFF61"] = "halfwidth",
        ["\U0001F600"] = "",
    });

    private static async Task<(SdkKeyProvider Provider, DataKey Key)> NewKeyAsync(int keyLength, params string[] arns)
    {
        var provider = new SdkKeyProvider();
        var key = await provider.GenerateDataKeyAsync(arns.Length == 0 ? [Arn1] : arns, Context, keyLength, default);
        return (provider, key);
    }

    public static TheoryData<int, AlibabaSdkLayout, int> Cases()
    {
        var data = new TheoryData<int, AlibabaSdkLayout, int>();
        foreach (int size in new[] { 0, 1, 15, 16, 17, 127, 128, 65_535, 65_536, 16_777_216 + 3 })
        foreach (var layout in new[] { AlibabaSdkLayout.Asn1, AlibabaSdkLayout.Stream })
        foreach (int keyLength in new[] { 16, 32 })
            data.Add(size, layout, keyLength);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task RoundTrips(int size, AlibabaSdkLayout layout, int keyLength)
    {
        var (provider, key) = await NewKeyAsync(keyLength, Arn1, Arn2);
        using (key)
        {
            var plaintext = Bytes.Random(size, seed: size ^ keyLength);
            var message = await Sdk.EncryptAsync(plaintext, key, [Arn1, Arn2], Context, layout);
            Assert.Equal(layout, AlibabaSdkFormat.Detect(message));
            var (result, back) = await Sdk.DecryptAsync(message, provider, Context, trickle: size < 70_000);
            Assert.Equal(plaintext, back);
            Assert.Equal(size, result.PlaintextLength);
            Assert.Equal(keyLength == 16 ? AlibabaSdkAlgorithm.Aes128Gcm : AlibabaSdkAlgorithm.Aes256Gcm, result.Header.Algorithm);
            Assert.Equal([Arn1, Arn2], result.Header.EncryptedDataKeys.Select(k => k.CmkArn).Order(StringComparer.Ordinal));
            Assert.Equal(key.WrappedKeys.Select(k => k.CiphertextBlob).Order(StringComparer.Ordinal),
                result.Header.EncryptedDataKeys.Select(k => k.CiphertextBlob).Order(StringComparer.Ordinal));
            Assert.Equal("kms-reported-" + result.UnwrappedFrom!.KeyId, result.KeyId);
        }
    }

    [Fact]
    public async Task EveryMessageHasFreshIvs()
    {
        var (_, key) = await NewKeyAsync(32);
        using (key)
        {
            var a = await AlibabaSdkEnvelope.ReadHeaderAsync(new MemoryStream(await Sdk.EncryptAsync([1, 2, 3], key, [Arn1], Context, AlibabaSdkLayout.Asn1)));
            var b = await AlibabaSdkEnvelope.ReadHeaderAsync(new MemoryStream(await Sdk.EncryptAsync([1, 2, 3], key, [Arn1], Context, AlibabaSdkLayout.Asn1)));
            Assert.NotEqual(a.HeaderIv.ToArray(), b.HeaderIv.ToArray());
            Assert.NotEqual(a.BodyIv.ToArray(), b.BodyIv.ToArray());
            Assert.NotEqual(a.BodyIv.ToArray(), a.HeaderIv.ToArray());
        }
    }

    [Fact]
    public async Task APlaintextFromAPipeIsReadToItsEnd()
    {
        var (provider, key) = await NewKeyAsync(32);
        using (key)
        {
            var plaintext = Bytes.Random(5000, 9);
            var output = new MemoryStream();
            var header = await AlibabaSdkEnvelope.EncryptAsync(new TrickleStream(plaintext), output, key, [Arn1], Context, AlibabaSdkLayout.Stream);
            Assert.Equal(5000, header.PlaintextLength);
            Assert.Equal(plaintext, (await Sdk.DecryptAsync(output.ToArray(), provider)).Plaintext);
        }
    }

    [Fact]
    public async Task TheWriterChecksItsArguments()
    {
        var (_, key) = await NewKeyAsync(32, Arn1, Arn2);
        using (key)
        {
            async Task Refused(IReadOnlyList<string> arns, string expected, EncryptionContext? context = null)
            {
                var e = await Assert.ThrowsAsync<ArgumentException>(() => AlibabaSdkEnvelope.EncryptAsync(new MemoryStream([1]), new MemoryStream(), key, arns, context ?? Context));
                Assert.Contains(expected, e.Message);
            }
            await Refused([Arn1], "2 wrapped copies but 1 CMK ARNs");
            await Refused(["key-one", Arn2], "is not a key ARN");
            await Refused(["alias/main", Arn2], "is not a key ARN");
            await Refused(["acs:kms:cn-hangzhou:1234567890:alias/main", Arn2], "is not a key ARN");
            await Refused(["acs:kms::1234567890:key/key-one", Arn2], "is not a key ARN");
            await Refused([Arn2, Arn1], "is under KMS key"); // swapped: each copy must go with its own key's ARN
            var big = EncryptionContext.Create(new Dictionary<string, string> { ["k"] = new string('v', 32_760) });
            await Refused([Arn1, Arn2], "more than 32767 bytes", big);
        }
        using var twice = new DataKey(new byte[32], [
            new WrappedDataKey(WrappedDataKey.AlibabaKmsProvider, "", "", "", "YQ=="),
            new WrappedDataKey(WrappedDataKey.AlibabaKmsProvider, "", "", "", "Yg==")]);
        var dup = await Assert.ThrowsAsync<ArgumentException>(() => AlibabaSdkEnvelope.EncryptAsync(new MemoryStream([1]), new MemoryStream(), twice, [Arn1, Arn1], Context));
        Assert.Contains("twice", dup.Message);
        using var notBase64 = new DataKey(new byte[32], [new WrappedDataKey(WrappedDataKey.AlibabaKmsProvider, "", "", "", "not base64!")]);
        await Assert.ThrowsAsync<ArgumentException>(() => AlibabaSdkEnvelope.EncryptAsync(new MemoryStream([1]), new MemoryStream(), notBase64, [Arn1], Context));
    }

    [Fact]
    public async Task ASourceOverTheLimitIsRefusedBeforeAnythingIsWritten()
    {
        var (_, key) = await NewKeyAsync(32);
        using (key)
        {
            string source = _dir.File("huge.bin");
            await using (var file = File.Create(source)) file.SetLength(AlibabaSdkFormat.MaxPlaintextLength + 1); // sparse
            var e = await Assert.ThrowsAsync<EnvelopeException>(() => AlibabaSdkFileOperations.EncryptFileAsync(source, _dir.File("huge.ekms"), key, [Arn1], Context));
            Assert.Equal(EnvelopeError.SdkMessageTooLarge, e.Error);
            Assert.Equal(["huge.bin"], Directory.GetFiles(_dir.Path).Select(Path.GetFileName));
            // The stream API refuses a seekable source of that length before reading it, too.
            await using var input = File.OpenRead(source);
            e = await Assert.ThrowsAsync<EnvelopeException>(() => AlibabaSdkEnvelope.EncryptAsync(input, Stream.Null, key, [Arn1], Context));
            Assert.Equal(EnvelopeError.SdkMessageTooLarge, e.Error);
            Assert.Equal(0, input.Position);
        }
    }

    [Theory]
    [InlineData(AlibabaSdkLayout.Asn1)]
    [InlineData(AlibabaSdkLayout.Stream)]
    public async Task FilesRoundTripAndATamperedFileLeavesNothingBehind(AlibabaSdkLayout layout)
    {
        var (provider, key) = await NewKeyAsync(32);
        string source = _dir.File("data.csv"), encrypted = _dir.File("data.csv.ekms"), back = _dir.File("back.csv");
        var plaintext = Bytes.Random(300_000, 3);
        await File.WriteAllBytesAsync(source, plaintext);
        using (key)
        {
            var written = await AlibabaSdkFileOperations.EncryptFileAsync(source, encrypted, key, [Arn1], Context, layout);
            Assert.Equal(300_000, written.PlaintextLength);
            Assert.Equal(new FileInfo(encrypted).Length, written.OutputLength);
            await AlibabaSdkFileOperations.VerifyFileAsync(encrypted, key);
            await Assert.ThrowsAsync<DestinationExistsException>(() => AlibabaSdkFileOperations.EncryptFileAsync(source, encrypted, key, [Arn1], Context, layout));
        }
        Assert.Equal(layout == AlibabaSdkLayout.Asn1 ? EnvelopeFileFormat.AlibabaSdk : EnvelopeFileFormat.AlibabaSdkStream, (await FileFormats.DetectAsync(encrypted))!.Id);
        var header = await AlibabaSdkFileOperations.ReadHeaderAsync(encrypted);
        Assert.Equal(300_000, header.PlaintextLength);

        var result = await AlibabaSdkFileOperations.DecryptFileAsync(encrypted, back, provider, options: new AlibabaSdkDecryptOptions { RequiredContext = Context });
        Assert.Equal(plaintext, await File.ReadAllBytesAsync(back));
        Assert.Equal(300_000, result.PlaintextLength);
        Assert.Equal("kms-reported-" + Arn1, result.KeyId);
        Assert.Equal(Arn1, (await AlibabaSdkFileOperations.VerifyFileAsync(encrypted, provider)).UnwrappedFrom!.KeyId);

        var tampered = await File.ReadAllBytesAsync(encrypted);
        tampered[^20] ^= 1;
        await File.WriteAllBytesAsync(_dir.File("t.ekms"), tampered);
        var e = await Assert.ThrowsAsync<EnvelopeException>(() => AlibabaSdkFileOperations.DecryptFileAsync(_dir.File("t.ekms"), _dir.File("t.csv"), provider));
        Assert.Equal(EnvelopeError.FrameTampered, e.Error);
        Assert.False(File.Exists(_dir.File("t.csv")));
        Assert.Empty(EnvelopeFileOperations.FindTempFiles(_dir.Path));
        // An existing destination is kept unless overwriting is asked for.
        await File.WriteAllTextAsync(_dir.File("keep.csv"), "mine");
        await Assert.ThrowsAsync<DestinationExistsException>(() => AlibabaSdkFileOperations.DecryptFileAsync(encrypted, _dir.File("keep.csv"), provider));
        Assert.Equal("mine", await File.ReadAllTextAsync(_dir.File("keep.csv")));
        await AlibabaSdkFileOperations.DecryptFileAsync(encrypted, _dir.File("keep.csv"), provider, overwrite: true);
        Assert.Equal(plaintext, await File.ReadAllBytesAsync(_dir.File("keep.csv")));
    }

    [Fact]
    public async Task DataKeysAndPlaintextBuffersAreWiped()
    {
        var (provider, key) = await NewKeyAsync(32);
        var plaintext = Bytes.Random(100_000, 5);
        byte[] message;
        using (key) message = await Sdk.EncryptAsync(plaintext, key, [Arn1], Context, AlibabaSdkLayout.Asn1);

        var tracked = SecretBuffers.StartTrackingForTests();
        using (var fresh = (await NewKeyAsync(16)).Key) await Sdk.EncryptAsync(plaintext, fresh, [Arn1], Context, AlibabaSdkLayout.Stream);
        var (result, back) = await Sdk.DecryptAsync(message, provider);
        Assert.Equal(plaintext, back);
        var tampered = (byte[])message.Clone();
        tampered[^30] ^= 1;
        await Assert.ThrowsAsync<EnvelopeException>(() => Sdk.DecryptAsync(tampered, provider));
        await Assert.ThrowsAsync<EnvelopeException>(() => Sdk.DecryptAsync(message[..^100], provider, trickle: true));

        // Data keys (16 and 32 bytes) and every body buffer (ciphertext decrypted in place, plaintext read to encrypt).
        Assert.Contains(tracked, b => b.Length == 16);
        Assert.Contains(tracked, b => b.Length == 32);
        Assert.True(tracked.Count(b => b.Length >= 100_000) >= 3, $"{tracked.Count(b => b.Length >= 100_000)} body buffers tracked");
        foreach (var buffer in tracked) Assert.True(buffer.AsSpan().IndexOfAnyExcept((byte)0) < 0, $"a {buffer.Length}-byte buffer was not wiped");
    }

    [Fact]
    public async Task OtherFormatsRefuse16ByteDataKeys()
    {
        using var key = new DataKey(new byte[16], [new WrappedDataKey(WrappedDataKey.AlibabaKmsProvider, "k", "", "", "YQ==")]);
        var e = await Assert.ThrowsAsync<KeyProviderException>(() => Envelope.EncryptAsync(new MemoryStream([1]), new MemoryStream(), key, EncryptionContext.Empty));
        Assert.Equal(KeyProviderError.InvalidDataKey, e.Error);
        Assert.Equal(KeyProviderError.InvalidDataKey, Assert.Throws<KeyProviderException>(() => LegacyEnvelope.Encrypt(key, [1])).Error);
        Assert.Throws<KeyProviderException>(() => new DataKey(new byte[24], []));
        Assert.Equal(16, key.Length);

        // An EKMS file whose wrapped key unwraps to 16 bytes is refused, not read with AES-128.
        var memory = new InMemoryKeyProvider();
        using var good = memory.NewKey();
        var output = new MemoryStream();
        await Envelope.EncryptAsync(new MemoryStream([1, 2]), output, good, EncryptionContext.Empty);
        var header = await EnvelopeHeader.ReadAsync(new MemoryStream(output.ToArray()));
        var sixteen = new SdkKeyProvider().Add(header.WrappedKeys[0].CiphertextBlob, new byte[16]);
        Assert.Equal(KeyProviderError.InvalidDataKey, (await Assert.ThrowsAsync<KeyProviderException>(
            () => Envelope.DecryptAsync(new MemoryStream(output.ToArray()), Stream.Null, new SixteenAlways(sixteen, header.WrappedKeys[0])))).Error);
    }

    /// <summary>A provider that hands out a 16-byte key whatever length is asked for: the format code must still refuse it.</summary>
    private sealed class SixteenAlways(SdkKeyProvider inner, WrappedDataKey entry) : IDataKeyProvider
    {
        public Task<DataKey> GenerateDataKeyAsync(IReadOnlyList<string> keyIds, EncryptionContext context, CancellationToken cancellationToken) => throw new NotSupportedException();
        public Task<DataKey> DecryptDataKeyAsync(IReadOnlyList<WrappedDataKey> entries, EncryptionContext context, CancellationToken cancellationToken)
            => inner.DecryptDataKeyAsync([entry], context, 16, cancellationToken);
    }

    [Fact]
    public async Task TheCachingAndCircuitBreakingProvidersPassTheKeyLengthOn()
    {
        var v = SdkVector.All[3]; // AES-128-GCM
        var inner = v.Provider();
        using var caching = new CachingDataKeyProvider(new CircuitBreakingDataKeyProvider(inner));
        for (int i = 0; i < 3; i++) Assert.Equal(v.Plaintext, (await Sdk.DecryptAsync(v.Asn1, caching)).Plaintext);
        Assert.Equal(1, inner.DecryptCalls); // cached
        // Asking for another length is another question: not answered from the 16-byte entry.
        var e = await Assert.ThrowsAsync<KeyProviderException>(() => ((IDataKeyProvider)caching).DecryptDataKeyAsync(
            [new WrappedDataKey(WrappedDataKey.AlibabaKmsProvider, v.Keys[0].Arn, "", "", v.Keys[0].Blob)], EncryptionContext.Empty, 32, default));
        Assert.Equal(KeyProviderError.InvalidDataKey, e.Error);
        Assert.Equal(2, inner.DecryptCalls);
        using var generated = await ((IDataKeyProvider)caching).GenerateDataKeyAsync([Arn1], EncryptionContext.Empty, 16, default);
        Assert.Equal(16, generated.Length);
    }

    [Fact]
    public async Task AProviderThatOnlyKnows32ByteKeysRefusesOtherLengths()
    {
        IDataKeyProvider plain = new InMemoryKeyProvider();
        var e = await Assert.ThrowsAsync<KeyProviderException>(() => plain.GenerateDataKeyAsync([Arn1], EncryptionContext.Empty, 16, default));
        Assert.Equal(KeyProviderError.InvalidDataKey, e.Error);
        e = await Assert.ThrowsAsync<KeyProviderException>(() => plain.DecryptDataKeyAsync([], EncryptionContext.Empty, 16, default));
        Assert.Equal(KeyProviderError.InvalidDataKey, e.Error);
        using var key = await plain.GenerateDataKeyAsync([Arn1], EncryptionContext.Empty, 32, default);
        Assert.Equal(32, key.Length);
    }
}
