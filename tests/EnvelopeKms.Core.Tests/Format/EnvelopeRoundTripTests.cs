using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using Xunit;

namespace EnvelopeKms.Tests.Format;

public class EnvelopeRoundTripTests
{
    private const int F = 4096;
    private static readonly EnvelopeEncryptOptions SmallFrames = new() { FrameLength = F };

    internal static async Task<byte[]> EncryptAsync(byte[] plaintext, DataKey key, EncryptionContext? context = null, EnvelopeEncryptOptions? options = null)
    {
        var output = new MemoryStream();
        await Envelope.EncryptAsync(new MemoryStream(plaintext), output, key, context ?? EncryptionContext.Empty, options ?? SmallFrames);
        return output.ToArray();
    }

    internal static async Task<byte[]> DecryptAsync(byte[] file, IDataKeyProvider provider, EnvelopeDecryptOptions? options = null)
    {
        var output = new MemoryStream();
        await Envelope.DecryptAsync(new MemoryStream(file), output, provider, options);
        return output.ToArray();
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(F - 1)]
    [InlineData(F)]
    [InlineData(F + 1)]
    [InlineData(2 * F)]
    [InlineData(2 * F + 1)]
    [InlineData(300 * F + 17)] // more than one batch: exercises the read/crypt/write overlap
    [InlineData(256 * F)]      // exactly one batch at 4 KiB frames: the empty final frame arrives in a batch of its own
    public async Task RoundTripsEverySizeClass(int size)
    {
        var provider = new InMemoryKeyProvider();
        using var key = provider.NewKey();
        var plaintext = Bytes.Random(size, size);
        var file = await EncryptAsync(plaintext, key);
        Assert.Equal(key.WrappedKeys.Count > 0 ? FrameLayout.BodyLength(size, F) : 0, file.Length - (await EnvelopeHeader.ReadAsync(new MemoryStream(file))).Length);
        Assert.Equal(plaintext, await DecryptAsync(file, provider));
    }

    [Fact]
    public async Task RandomisedSizesAndFrameLengths()
    {
        var rng = new Random(20261128);
        var provider = new InMemoryKeyProvider();
        for (int i = 0; i < 40; i++)
        {
            int frame = rng.Next(EnvelopeFormat.MinFrameLength, 70_000);
            int size = rng.Next(0, 5 * frame);
            var options = new EnvelopeEncryptOptions { FrameLength = frame, Parallelism = 1 + rng.Next(4) };
            using var key = provider.NewKey();
            var plaintext = Bytes.Random(size, i);
            var file = await EncryptAsync(plaintext, key, options: options);
            var header = await EnvelopeHeader.ReadAsync(new MemoryStream(file));
            Assert.Equal(frame, header.FrameLength);
            Assert.Equal(size, header.GetPlaintextLength(file.Length));
            Assert.Equal(plaintext, await DecryptAsync(file, provider, new EnvelopeDecryptOptions { Parallelism = 1 + rng.Next(4) }));
        }
    }

    [Fact]
    public async Task ReadsFromANonSeekableStreamThatReturnsOneByteAtATime()
    {
        var provider = new InMemoryKeyProvider();
        using var key = provider.NewKey();
        var plaintext = Bytes.Random(3 * F + 5, 7);
        var output = new MemoryStream();
        await Envelope.EncryptAsync(new TrickleStream(plaintext), output, key, EncryptionContext.Empty, SmallFrames);
        var file = output.ToArray();
        var decrypted = new MemoryStream();
        await Envelope.DecryptAsync(new TrickleStream(file), decrypted, provider);
        Assert.Equal(plaintext, decrypted.ToArray());
    }

    [Fact]
    public async Task OneDataKeyEncryptsManyFilesEachWithItsOwnMessageId()
    {
        var provider = new InMemoryKeyProvider();
        using var key = provider.NewKey();
        var plaintext = Bytes.Random(100, 1);
        var a = await EncryptAsync(plaintext, key);
        var b = await EncryptAsync(plaintext, key);
        var ha = await EnvelopeHeader.ReadAsync(new MemoryStream(a));
        var hb = await EnvelopeHeader.ReadAsync(new MemoryStream(b));
        Assert.False(ha.MessageId.SequenceEqual(hb.MessageId));
        Assert.NotEqual(a[ha.Length..], b[hb.Length..]);
        Assert.Equal(plaintext, await DecryptAsync(a, provider));
        Assert.Equal(plaintext, await DecryptAsync(b, provider));
        Assert.Equal(1, provider.GenerateCalls);
    }

    [Fact]
    public async Task ContextIsAuthenticatedAndRequiredPairsAreChecked()
    {
        var provider = new InMemoryKeyProvider();
        using var key = provider.NewKey();
        var context = EncryptionContext.Create(new Dictionary<string, string> { ["project"] = "Apollo", ["stage"] = "prod", ["ünï"] = "çødé" });
        var file = await EncryptAsync([1, 2, 3], key, context);
        var header = await EnvelopeHeader.ReadAsync(new MemoryStream(file));
        Assert.True(header.EncryptionContext.ContentEquals(context));

        var ok = new EnvelopeDecryptOptions { RequiredContext = EncryptionContext.Create(new Dictionary<string, string> { ["project"] = "Apollo" }) };
        Assert.Equal(new byte[] { 1, 2, 3 }, await DecryptAsync(file, provider, ok));

        provider.DecryptCalls = 0;
        var wrong = new EnvelopeDecryptOptions { RequiredContext = EncryptionContext.Create(new Dictionary<string, string> { ["project"] = "Gemini" }) };
        var e = await Assert.ThrowsAsync<EnvelopeException>(() => DecryptAsync(file, provider, wrong));
        Assert.Equal(EnvelopeError.ContextMismatch, e.Error);
        Assert.Equal(0, provider.DecryptCalls); // rejected before any KMS call

        var missing = new EnvelopeDecryptOptions { RequiredContext = EncryptionContext.Create(new Dictionary<string, string> { ["owner"] = "x" }) };
        e = await Assert.ThrowsAsync<EnvelopeException>(() => DecryptAsync(file, provider, missing));
        Assert.Equal(EnvelopeError.ContextMismatch, e.Error);
        Assert.Contains("owner", e.Message);
    }

    [Fact]
    public async Task SeveralWrappedKeysAnyOneDecrypts()
    {
        var provider = new InMemoryKeyProvider();
        using var key = provider.NewKey("key-a", "key-b", "key-c");
        var file = await EncryptAsync(Bytes.Random(5000, 3), key);
        var header = await EnvelopeHeader.ReadAsync(new MemoryStream(file));
        Assert.Equal(["key-a", "key-b", "key-c"], header.WrappedKeys.Select(k => k.KeyId));
        Assert.Equal(Bytes.Random(5000, 3), await DecryptAsync(file, provider));
    }

    [Fact]
    public void DataKeyIsWipedOnDispose()
    {
        var provider = new InMemoryKeyProvider();
        var key = provider.NewKey();
        var buffer = key.BufferForTests;
        Assert.Contains(buffer, b => b != 0);
        key.Dispose();
        Assert.All(buffer, b => Assert.Equal(0, b));
        Assert.Throws<ObjectDisposedException>(() => key.Plaintext.Length);
    }

    [Fact]
    public async Task RejectsADataKeyOfTheWrongLength()
    {
        var e = Assert.Throws<KeyProviderException>(() => new DataKey(new byte[24], []));
        Assert.Equal(KeyProviderError.InvalidDataKey, e.Error);
        // 16-byte keys exist (for Encryption SDK messages of algorithm 1), but EKMS refuses them.
        using var aes128 = new DataKey(new byte[16], [new WrappedDataKey(WrappedDataKey.AlibabaKmsProvider, "k", "", "", "YQ==")]);
        e = await Assert.ThrowsAsync<KeyProviderException>(() => Envelope.EncryptAsync(new MemoryStream([1]), new MemoryStream(), aes128, EncryptionContext.Empty));
        Assert.Equal(KeyProviderError.InvalidDataKey, e.Error);
    }

    [Theory]
    [InlineData(0, 4096, 16)]
    [InlineData(4096, 4096, 4096 + 16 + 16)]
    [InlineData(5_000_000_000, 65536, 5_000_000_000 + (5_000_000_000 / 65536 + 1) * 16)]
    public void LayoutArithmeticHoldsBeyond4GiB(long plaintext, int frame, long body)
    {
        Assert.Equal(body, FrameLayout.BodyLength(plaintext, frame));
        Assert.Equal(plaintext, FrameLayout.PlaintextLength(body, frame));
        Assert.Equal(plaintext / frame + 1, FrameLayout.FrameCount(plaintext, frame));
    }

    [Fact]
    public void BodyLengthsThatNoValidFileHasAreRejected()
    {
        Assert.Null(FrameLayout.PlaintextLength(15, 4096));
        Assert.Null(FrameLayout.PlaintextLength(4096 + 16, 4096));      // a full frame and no final frame
        Assert.Null(FrameLayout.PlaintextLength(4096 + 16 + 15, 4096)); // a final frame shorter than a tag
        // more than 2^32 frames
        Assert.Null(FrameLayout.PlaintextLength((1L << 32) * (4096 + 16) + 16, 4096));
        Assert.Equal(4096L * 10 + 5, FrameLayout.PlaintextLength(10 * (4096 + 16) + 21, 4096));
        Assert.Equal(4096 + 2L * (4096 + 16), FrameLayout.FrameOffset(4096, 4096, 3));
    }
}
