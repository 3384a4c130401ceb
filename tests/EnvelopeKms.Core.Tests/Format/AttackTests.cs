using System.Buffers.Binary;
using System.Text;
using EnvelopeKms.Files;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using Xunit;

namespace EnvelopeKms.Tests.Format;

/// <summary>
/// The attack list of shared/reference/envelope-formats.md §8 items 2–12: every tampered, truncated, reordered,
/// spliced, extended or malformed file fails with the right error and leaves no output file behind. These run on
/// v1 files (still read forever, and written on request); HeaderV2Tests covers the v2 header, and the body attacks
/// also run on v2 files there.
/// </summary>
public class AttackTests : IDisposable
{
    private const int F = 4096;
    private const int Sealed = F + 16;
    private readonly TempDir _dir = new();
    private readonly InMemoryKeyProvider _provider = new();
    private readonly DataKey _key;

    public AttackTests() => _key = _provider.NewKey();
    public void Dispose() { _key.Dispose(); _dir.Dispose(); }

    private Task<byte[]> Encrypt(byte[] plaintext, EncryptionContext? context = null, DataKey? key = null)
        => EnvelopeRoundTripTests.EncryptAsync(plaintext, key ?? _key, context, new EnvelopeEncryptOptions { FrameLength = F, FormatVersion = EnvelopeFormat.Version1 });

    private static int HeaderLength(byte[] file) => EnvelopeHeader.ReadAsync(new MemoryStream(file)).Result.Length;

    /// <summary>Decrypts <paramref name="file"/> through the file API and asserts it fails and writes nothing.</summary>
    private async Task<Exception> AssertRejected(byte[] file, EnvelopeDecryptOptions? options = null, IDataKeyProvider? provider = null)
    {
        string source = _dir.File("in.ekms");
        string destination = _dir.File("out.bin");
        await File.WriteAllBytesAsync(source, file);
        var e = await Record.ExceptionAsync(() => EnvelopeFileOperations.DecryptFileAsync(source, destination, provider ?? _provider, options: options));
        Assert.NotNull(e);
        Assert.True(e is EnvelopeException or KeyProviderException, $"unexpected {e.GetType().Name}: {e.Message}");
        Assert.False(File.Exists(destination), "a failed decryption left an output file");
        Assert.Equal(["in.ekms"], Directory.GetFiles(_dir.Path).Select(Path.GetFileName));
        return e;
    }

    private async Task<EnvelopeError> Rejected(byte[] file, EnvelopeDecryptOptions? options = null)
        => Assert.IsType<EnvelopeException>(await AssertRejected(file, options)).Error;

    private static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

    // §8.3 Truncation
    [Fact]
    public async Task TruncationAtEveryFrameBoundaryAndNearItFails()
    {
        var file = await Encrypt(Bytes.Random(3 * F + 100, 1));
        int h = HeaderLength(file);
        var cuts = new SortedSet<int>();
        for (int k = 0; k <= 4; k++)
            foreach (int d in new[] { -1, 0, 1, 16 })
                cuts.Add(h + k * Sealed + d);
        cuts.Add(file.Length - 1);
        foreach (int cut in cuts.Where(c => c > 0 && c < file.Length))
        {
            var error = await Rejected(file[..cut]);
            Assert.Contains(error, new[] { EnvelopeError.Truncated, EnvelopeError.FrameTampered });
        }
    }

    [Fact]
    public async Task TruncationInsideTheHeaderFailsBeforeAnyKmsCall()
    {
        var file = await Encrypt(Bytes.Random(10, 1));
        int h = HeaderLength(file);
        for (int cut = 0; cut < h; cut++)
        {
            var error = await Rejected(file[..cut]);
            Assert.Contains(error, new[] { EnvelopeError.Truncated, EnvelopeError.NotEnvelope });
        }
        Assert.Equal(0, _provider.DecryptCalls);
    }

    [Fact]
    public async Task DroppingTheFinalFrameFails()
    {
        var exact = await Encrypt(Bytes.Random(2 * F, 2)); // two full frames and an empty final frame
        Assert.Equal(EnvelopeError.Truncated, await Rejected(exact[..^16]));
        var shortFinal = await Encrypt(Bytes.Random(2 * F + 10, 2));
        Assert.Equal(EnvelopeError.Truncated, await Rejected(shortFinal[..^26]));
    }

    // §8.4 Reordering and splicing
    [Fact]
    public async Task SwappedDuplicatedAndMovedFramesFail()
    {
        var file = await Encrypt(Bytes.Random(3 * F + 100, 3));
        int h = HeaderLength(file);
        byte[] Frame(int i) => file[(h + i * Sealed)..(h + (i + 1) * Sealed)];
        var header = file[..h];
        var final = file[(h + 3 * Sealed)..];

        Assert.Equal(EnvelopeError.FrameTampered, await Rejected(Concat(header, Frame(1), Frame(0), Frame(2), final)));
        Assert.Equal(EnvelopeError.FrameTampered, await Rejected(Concat(header, Frame(0), Frame(0), Frame(2), final)));
        // The final frame moved earlier: it is now read as part of a full-length slot and fails.
        Assert.Contains(await Rejected(Concat(header, Frame(0), final, Frame(1), Frame(2))), new[] { EnvelopeError.FrameTampered, EnvelopeError.Truncated });
    }

    [Fact]
    public async Task FramesSplicedFromAnotherFileUnderTheSameDataKeyFail()
    {
        var plaintext = Bytes.Random(3 * F + 100, 4);
        var a = await Encrypt(plaintext);
        var b = await Encrypt(plaintext); // same data key and plaintext, another message id
        int ha = HeaderLength(a), hb = HeaderLength(b);
        var spliced = (byte[])a.Clone();
        Array.Copy(b, hb + Sealed, spliced, ha + Sealed, Sealed); // frame 2 of B into A
        Assert.Equal(EnvelopeError.FrameTampered, await Rejected(spliced));
        // Header of A with the body of B.
        Assert.Equal(EnvelopeError.FrameTampered, await Rejected(Concat(a[..ha], b[hb..])));
    }

    // §8.5 Extension
    [Theory]
    [InlineData(1)]
    [InlineData(15)]
    [InlineData(16)]
    [InlineData(Sealed)]
    public async Task TrailingBytesFail(int extra)
    {
        var file = await Encrypt(Bytes.Random(F + 100, 5));
        var error = await Rejected(Concat(file, Bytes.Random(extra, extra)));
        Assert.Contains(error, new[] { EnvelopeError.FrameTampered, EnvelopeError.Truncated });
    }

    [Fact]
    public async Task AWholeExtraFrameAfterTheFinalFrameFails()
    {
        var file = await Encrypt(Bytes.Random(2 * F + 100, 6));
        int h = HeaderLength(file);
        Assert.Contains(await Rejected(Concat(file, file[h..(h + Sealed)])), new[] { EnvelopeError.FrameTampered, EnvelopeError.Truncated });
    }

    // §8.6 Bit flips
    [Fact]
    public async Task EveryBitOfTheHeaderIsAuthenticated()
    {
        var file = await Encrypt(Bytes.Random(100, 7), EncryptionContext.Create(new Dictionary<string, string> { ["a"] = "b" }));
        int h = HeaderLength(file);
        for (int bit = 0; bit < h * 8; bit++)
        {
            var flipped = (byte[])file.Clone();
            flipped[bit / 8] ^= (byte)(1 << (bit % 8));
            string source = _dir.File("in.ekms");
            await File.WriteAllBytesAsync(source, flipped);
            var e = await Record.ExceptionAsync(() => EnvelopeFileOperations.DecryptFileAsync(source, _dir.File("out.bin"), _provider));
            Assert.True(e is EnvelopeException or KeyProviderException, $"bit {bit}: {e?.GetType().Name ?? "no error"}");
            Assert.False(File.Exists(_dir.File("out.bin")));
        }
        Assert.Single(Directory.GetFiles(_dir.Path));
    }

    [Fact]
    public async Task BitFlipsInFrameCiphertextAndTagsFail()
    {
        var file = await Encrypt(Bytes.Random(2 * F + 100, 8));
        int h = HeaderLength(file);
        var positions = new List<int>();
        for (int p = h; p < file.Length; p += 64) positions.Add(p);
        for (int frame = 0; frame < 3; frame++)
        {
            int tagStart = frame < 2 ? h + frame * Sealed + F : file.Length - 16;
            for (int t = 0; t < 16; t++) positions.Add(tagStart + t);
        }
        foreach (int p in positions)
        {
            var flipped = (byte[])file.Clone();
            flipped[p] ^= 0x01;
            var e = await Assert.ThrowsAsync<EnvelopeException>(() => EnvelopeRoundTripTests.DecryptAsync(flipped, _provider));
            Assert.Equal(EnvelopeError.FrameTampered, e.Error);
        }
    }

    // §8.7 Header fields
    [Theory]
    [InlineData(8, 0x03, EnvelopeError.UnsupportedVersion)]
    [InlineData(8, 0x00, EnvelopeError.UnsupportedVersion)]
    [InlineData(10, 0x02, EnvelopeError.UnsupportedSuite)]
    [InlineData(11, 0x01, EnvelopeError.MalformedHeader)]
    [InlineData(0, 0x88, EnvelopeError.NotEnvelope)]
    [InlineData(1, (byte)'A', EnvelopeError.NotEnvelope)]
    public async Task BadFixedFieldsAreRejectedBeforeAnyKmsCall(int offset, byte value, EnvelopeError expected)
    {
        var file = await Encrypt(Bytes.Random(100, 9));
        file[offset] = value;
        Assert.Equal(expected, await Rejected(file));
        Assert.Equal(0, _provider.DecryptCalls);
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(1u)]
    [InlineData(4095u)]
    [InlineData((1u << 24) + 1)]
    [InlineData(0xFFFFFFFFu)]
    public async Task FrameLengthsOutsideTheRangeAreRejected(uint frameLength)
    {
        var file = await Encrypt(Bytes.Random(100, 10));
        BinaryPrimitives.WriteUInt32BigEndian(file.AsSpan(12), frameLength);
        Assert.Equal(EnvelopeError.MalformedHeader, await Rejected(file));
    }

    [Fact]
    public async Task Base64AndTextModeMangledFilesGetAClearError()
    {
        var file = await Encrypt(Bytes.Random(100, 11));
        Assert.Equal(EnvelopeError.Base64Encoded, await Rejected(Encoding.ASCII.GetBytes(Convert.ToBase64String(file))));

        var lfToCrlf = new List<byte>();
        foreach (var b in file) { if (b == '\n') lfToCrlf.Add((byte)'\r'); lfToCrlf.Add(b); }
        Assert.Equal(EnvelopeError.TextModeCorrupted, await Rejected(lfToCrlf.ToArray()));

        var crlfToLf = new List<byte>();
        for (int i = 0; i < file.Length; i++) if (!(file[i] == '\r' && i + 1 < file.Length && file[i + 1] == '\n')) crlfToLf.Add(file[i]);
        Assert.Equal(EnvelopeError.TextModeCorrupted, await Rejected(crlfToLf.ToArray()));
    }

    // §8.8 Huge declared lengths
    [Fact]
    public async Task HugeDeclaredLengthsGiveBoundedCleanErrorsWithoutKmsCalls()
    {
        var file = await Encrypt(Bytes.Random(10, 12));
        int ecAt = EnvelopeFormat.FixedPrefixSize;

        var ec = (byte[])file.Clone();
        BinaryPrimitives.WriteUInt16BigEndian(ec.AsSpan(ecAt), 0xFFFF);
        Assert.Contains(await Rejected(ec), new[] { EnvelopeError.Truncated, EnvelopeError.MalformedHeader });

        int countAt = ecAt + 2; // empty context
        var zero = (byte[])file.Clone();
        BinaryPrimitives.WriteUInt16BigEndian(zero.AsSpan(countAt), 0);
        Assert.Equal(EnvelopeError.MalformedHeader, await Rejected(zero));

        var many = (byte[])file.Clone();
        BinaryPrimitives.WriteUInt16BigEndian(many.AsSpan(countAt), 0xFFFF);
        Assert.Equal(EnvelopeError.LimitExceeded, await Rejected(many));

        // Each length field of the first entry claiming 0xFFFF bytes.
        int fieldAt = countAt + 2;
        for (int field = 0; field < 5; field++)
        {
            var huge = (byte[])file.Clone();
            BinaryPrimitives.WriteUInt16BigEndian(huge.AsSpan(fieldAt), 0xFFFF);
            Assert.Equal(EnvelopeError.LimitExceeded, await Rejected(huge));
            fieldAt += 2 + BinaryPrimitives.ReadUInt16BigEndian(file.AsSpan(fieldAt));
        }
        Assert.Equal(0, _provider.DecryptCalls);
    }

    // §8.9 Encryption context encoding
    [Fact]
    public async Task NonCanonicalContextEncodingsAreRejected()
    {
        var file = await Encrypt(Bytes.Random(10, 13), EncryptionContext.Create(new Dictionary<string, string> { ["a"] = "1", ["b"] = "2" }));
        int at = EnvelopeFormat.FixedPrefixSize + 2 + 2; // first key length
        // Entries are "a"="1","b"="2": swap the key bytes to make them unsorted.
        var unsorted = (byte[])file.Clone();
        unsorted[at + 2] = (byte)'b';
        unsorted[at + 2 + 1 + 2 + 1 + 2] = (byte)'a';
        Assert.Equal(EnvelopeError.MalformedHeader, await Rejected(unsorted));

        var duplicate = (byte[])file.Clone();
        duplicate[at + 2 + 1 + 2 + 1 + 2] = (byte)'a';
        Assert.Equal(EnvelopeError.MalformedHeader, await Rejected(duplicate));

        var invalidUtf8 = (byte[])file.Clone();
        invalidUtf8[at + 2] = 0xFF;
        Assert.Equal(EnvelopeError.MalformedHeader, await Rejected(invalidUtf8));
    }

    [Fact]
    public async Task AWrongContextValueFailsWithoutAnyKmsCall()
    {
        var file = await Encrypt(Bytes.Random(10, 14), EncryptionContext.Create(new Dictionary<string, string> { ["a"] = "1" }));
        var options = new EnvelopeDecryptOptions { RequiredContext = EncryptionContext.Create(new Dictionary<string, string> { ["a"] = "2" }) };
        Assert.Equal(EnvelopeError.ContextMismatch, await Rejected(file, options));
        Assert.Equal(0, _provider.DecryptCalls);
    }

    // §8.10 Wrong key and commitment
    [Fact]
    public async Task AKmsThatReturnsAnotherKeyFailsTheCommitment()
    {
        var file = await Encrypt(Bytes.Random(10, 15));
        var liar = new InMemoryKeyProvider();
        var header = await EnvelopeHeader.ReadAsync(new MemoryStream(file));
        liar.Add(header.WrappedKeys[0].CiphertextBlob, Bytes.Random(32, 99));
        var e = Assert.IsType<EnvelopeException>(await AssertRejected(file, provider: liar));
        Assert.Equal(EnvelopeError.KeyCommitmentMismatch, e.Error);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task AnEntryUnwrappingToAnotherKeyCannotHijackTheFile(bool hostileFirst)
    {
        // Two entries; one (the "salamander") unwraps to a different data key. The commitment rejects it and the
        // honest entry decrypts, whichever order they come in.
        var provider = new InMemoryKeyProvider();
        var honestKey = Bytes.Random(32, 1);
        var honest = provider.Add("honest", honestKey, "key-honest");
        var hostile = provider.Add("hostile", Bytes.Random(32, 2), "key-hostile");
        using var key = new DataKey(honestKey, hostileFirst ? [hostile, honest] : [honest, hostile]);
        var plaintext = Bytes.Random(5000, 16);
        var file = await Encrypt(plaintext, key: key);
        var output = new MemoryStream();
        var result = await Envelope.DecryptAsync(new MemoryStream(file), output, provider);
        Assert.Equal(plaintext, output.ToArray());
        Assert.Equal("key-honest", result.KeyId);
    }

    [Fact]
    public async Task WhenNoEntryUnwrapsTheErrorSaysSo()
    {
        var file = await Encrypt(Bytes.Random(10, 17));
        var e = Assert.IsType<KeyProviderException>(await AssertRejected(file, provider: new InMemoryKeyProvider()));
        Assert.Equal(KeyProviderError.NoMatchingKey, e.Error);
    }

    // §8.11 Limits
    [Fact]
    public async Task MoreWrappedKeysThanTheLimitIsRejectedBeforeAnyKmsCall()
    {
        using var key = _provider.NewKey(Enumerable.Range(0, 9).Select(i => $"key-{i}").ToArray());
        var file = await Encrypt(Bytes.Random(10, 18), key: key);
        _provider.DecryptCalls = 0;
        Assert.Equal(EnvelopeError.LimitExceeded, await Rejected(file, new EnvelopeDecryptOptions { Limits = new EnvelopeReadLimits { MaxWrappedKeys = 8 } }));
        Assert.Equal(0, _provider.DecryptCalls);
        Assert.Equal(Bytes.Random(10, 18), await EnvelopeRoundTripTests.DecryptAsync(file, _provider,
            new EnvelopeDecryptOptions { Limits = new EnvelopeReadLimits { MaxWrappedKeys = 9 } }));
    }

    [Fact]
    public async Task AFrameLengthAboveTheReadersLimitIsRejected()
    {
        var file = await EnvelopeRoundTripTests.EncryptAsync(Bytes.Random(10, 19), _key, null, new EnvelopeEncryptOptions { FrameLength = 1 << 20, FormatVersion = EnvelopeFormat.Version1 });
        Assert.Equal(EnvelopeError.LimitExceeded, await Rejected(file, new EnvelopeDecryptOptions { Limits = new EnvelopeReadLimits { MaxFrameLength = 1 << 16 } }));
    }

    // §8.12 Output safety
    [Fact]
    public async Task AnExistingDestinationStaysIntactWhenDecryptionFails()
    {
        var file = await Encrypt(Bytes.Random(3 * F, 20));
        file[^1] ^= 1;
        string source = _dir.File("in.ekms"), destination = _dir.File("keep.txt");
        await File.WriteAllBytesAsync(source, file);
        await File.WriteAllTextAsync(destination, "precious");
        await Assert.ThrowsAsync<EnvelopeException>(() => EnvelopeFileOperations.DecryptFileAsync(source, destination, _provider, overwrite: true));
        Assert.Equal("precious", await File.ReadAllTextAsync(destination));
        Assert.Equal(2, Directory.GetFiles(_dir.Path).Length);
    }

    [Fact]
    public async Task TheDestinationIsNotOverwrittenWithoutBeingAsked()
    {
        string source = _dir.File("plain.txt"), destination = _dir.File("plain.txt.ekms");
        await File.WriteAllTextAsync(source, "data");
        await File.WriteAllTextAsync(destination, "existing");
        await Assert.ThrowsAsync<DestinationExistsException>(() => EnvelopeFileOperations.EncryptFileAsync(source, destination, _key, EncryptionContext.Empty));
        Assert.Equal("existing", await File.ReadAllTextAsync(destination));
        await EnvelopeFileOperations.EncryptFileAsync(source, destination, _key, EncryptionContext.Empty, overwrite: true);
        await EnvelopeFileOperations.DecryptFileAsync(destination, _dir.File("back.txt"), _provider);
        Assert.Equal("data", await File.ReadAllTextAsync(_dir.File("back.txt")));
        Assert.Equal("data", await File.ReadAllTextAsync(source));
    }

    [Fact]
    public async Task CancellationLeavesNoTempFile()
    {
        string source = _dir.File("big.bin");
        await File.WriteAllBytesAsync(source, Bytes.Random(8 << 20, 21));
        using var cts = new CancellationTokenSource();
        var progress = new ProgressCounter();
        var task = EnvelopeFileOperations.EncryptFileAsync(source, _dir.File("big.bin.ekms"), _key, EncryptionContext.Empty, progress: progress, cancellationToken: cts.Token);
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => task);
        Assert.Equal(["big.bin"], Directory.GetFiles(_dir.Path).Select(Path.GetFileName));
    }

    [Fact]
    public async Task RefusesToWriteOverTheSourceOrIntoADirectory()
    {
        string source = _dir.File("a.txt");
        await File.WriteAllTextAsync(source, "x");
        await Assert.ThrowsAsync<DestinationIsSourceException>(() => EnvelopeFileOperations.EncryptFileAsync(source, source, _key, EncryptionContext.Empty, overwrite: true));
        Directory.CreateDirectory(_dir.File("dir.ekms"));
        await Assert.ThrowsAsync<IOException>(() => EnvelopeFileOperations.EncryptFileAsync(source, _dir.File("dir.ekms"), _key, EncryptionContext.Empty, overwrite: true));
        Assert.Equal("x", await File.ReadAllTextAsync(source));
    }

    [Fact]
    public async Task OutputsAreNoLooserThanTheSource()
    {
        if (OperatingSystem.IsWindows()) return;
        string source = _dir.File("secret.txt");
        await File.WriteAllTextAsync(source, "x");
        File.SetUnixFileMode(source, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        await EnvelopeFileOperations.EncryptFileAsync(source, _dir.File("secret.txt.ekms"), _key, EncryptionContext.Empty);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(_dir.File("secret.txt.ekms")));
    }
}
