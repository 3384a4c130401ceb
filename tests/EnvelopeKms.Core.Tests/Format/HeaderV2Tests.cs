using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using EnvelopeKms.Crypto;
using EnvelopeKms.Files;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using Xunit;

namespace EnvelopeKms.Tests.Format;

/// <summary>
/// The EKMS v2 header (docs/format.md §12): the preamble, the two fixed-size slots, the reading algorithm with its
/// fallback to the other slot, and every bad-input path. Body attacks on v2 files are here too (AttackTests runs the
/// full list on v1 files; the body is the same).
/// </summary>
public class HeaderV2Tests : IDisposable
{
    private const int F = 4096;
    private const int P = EnvelopeFormat.PreambleSize;
    private readonly InMemoryKeyProvider _provider = new();
    private readonly DataKey _key;
    private readonly TempDir _dir = new();

    public HeaderV2Tests() => _key = _provider.NewKey("key-1", "acs:kms:cn-test:1234:key/key-2");
    public void Dispose() { _key.Dispose(); _dir.Dispose(); }

    private static readonly EncryptionContext Context = EncryptionContext.Create(new Dictionary<string, string> { ["app"] = "v2", ["team"] = "x" });

    private async Task<byte[]> Encrypt(byte[] plaintext, DataKey? key = null)
        => await EnvelopeRoundTripTests.EncryptAsync(plaintext, key ?? _key, Context, new EnvelopeEncryptOptions { FrameLength = F });

    private static int SlotSize(byte[] file) => (int)BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(48));
    private static int SlotOffset(byte[] file, int slot) => P + slot * SlotSize(file);
    private static int HeaderLength(byte[] file) => P + 2 * SlotSize(file);

    /// <summary>Offset of the content's last byte + 1 (generation through tag) in slot 0, read from a genuine file.</summary>
    private static int ContentLength(byte[] file)
    {
        var slot = file.AsSpan(P, SlotSize(file));
        int end = slot.Length;
        while (end > 0 && slot[end - 1] == 0) end--;
        return end; // a tag ending in 0x00 would make this short by a byte or so: callers only use it to stay inside the content
    }

    private async Task<EnvelopeDecryptResult> Decrypt(byte[] file, IDataKeyProvider? provider = null, EnvelopeDecryptOptions? options = null)
        => await Envelope.DecryptAsync(new MemoryStream(file), Stream.Null, provider ?? _provider, options);

    private async Task<EnvelopeException> Rejected(byte[] file)
    {
        var e = await Record.ExceptionAsync(() => Decrypt(file));
        return Assert.IsType<EnvelopeException>(e);
    }

    // ---- writing and round trips ----------------------------------------------------------------------------

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(F - 1)]
    [InlineData(F)]
    [InlineData(F + 1)]
    [InlineData(2 * F + 1)]
    public async Task V2RoundTripsAtEverySizeClass(int size)
    {
        var plaintext = Bytes.Random(size, size);
        var file = await Encrypt(plaintext);
        Assert.Equal(EnvelopeFormat.Version2, file[8]);
        int s = SlotSize(file);
        Assert.Equal(1024, s);
        Assert.Equal(HeaderLength(file) + FrameLayout.BodyLength(size, F), file.Length);
        Assert.True(file.AsSpan(P, s).SequenceEqual(file.AsSpan(P + s, s)), "a new file's two slots are identical");
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(P)));
        var output = new MemoryStream();
        var result = await Envelope.DecryptAsync(new MemoryStream(file), output, _provider);
        Assert.Equal(plaintext, output.ToArray());
        Assert.Equal(0, result.Header.ActiveSlot!.Index);
        Assert.Equal(1u, result.Header.Generation);
        Assert.All(result.Header.Slots, slot => Assert.Equal(EnvelopeSlotState.Current, slot.State));
        Assert.Null(result.SlotProblem);
        Assert.Equal(1, _provider.DecryptCalls);
    }

    [Fact]
    public async Task ProtectWritesV2ByDefaultAndV1OnRequest()
    {
        Assert.Equal(2, (await Encrypt([1]))[8]);
        var v1 = await EnvelopeRoundTripTests.EncryptAsync([1, 2], _key, Context, new EnvelopeEncryptOptions { FrameLength = F, FormatVersion = 1 });
        Assert.Equal(1, v1[8]);
        Assert.Equal(new byte[] { 1, 2 }, await EnvelopeRoundTripTests.DecryptAsync(v1, _provider));
    }

    [Fact]
    public async Task SixteenWrappedKeysAreWritten_AndReadOnlyByAReaderConfiguredForThem()
    {
        using var key = _provider.NewKey(Enumerable.Range(1, 16).Select(i => $"key-{i}").ToArray());
        var file = await Encrypt([9], key);
        Assert.Equal(EnvelopeError.LimitExceeded, (await Rejected(file)).Error);
        var result = await Decrypt(file, options: new EnvelopeDecryptOptions { Limits = new EnvelopeReadLimits { MaxWrappedKeys = 16 } });
        Assert.Equal(16, result.Header.WrappedKeys.Count);
    }

    [Theory]
    [InlineData(100, 1024)]
    [InlineData(512, 1024)]
    [InlineData(513, 1536)]
    [InlineData(1000, 2048)]
    [InlineData(100_000, 200_192)]
    [InlineData(131_072, 262_144)]
    [InlineData(170_255, 262_144)]
    public void SlotSizeIsTwiceTheContentRoundedUpTo512WithinTheBounds(int content, int expected)
        => Assert.Equal(expected, EnvelopeHeader.SlotSizeFor(content));

    [Fact]
    public async Task TheVectorHeaderTagMatchesAnIndependentAesGcmComputation()
    {
        var committed = JsonNode.Parse(await File.ReadAllTextAsync(KnownAnswerTests.VectorPathFor(2)))!;
        var file = Convert.FromHexString((string)committed["vectors"]![1]!["file"]!);
        int s = SlotSize(file);
        Assert.Equal(1024, s);
        Span<byte> fileKey = stackalloc byte[32], commitment = stackalloc byte[32];
        KeySchedule.Derive(KnownAnswerTests.DataKeyBytes, KnownAnswerTests.MessageId, 1, fileKey, commitment);
        // Content: u32 g, 8-byte nonce, u16 L, context, u16 n, entries, commitment, tag.
        var slot = file.AsSpan(P, s);
        int l = BinaryPrimitives.ReadUInt16BigEndian(slot[12..]);
        int at = 14 + l + 2;
        for (int field = 0; field < 5; field++) at += 2 + BinaryPrimitives.ReadUInt16BigEndian(slot[at..]);
        Assert.Equal(commitment.ToArray(), slot.Slice(at, 32).ToArray());
        var nonce = new byte[12];
        nonce.AsSpan(0, 4).Fill(0xFF);
        KnownAnswerTests.HeaderNonce.CopyTo(nonce, 4);
        Assert.Equal(KnownAnswerTests.HeaderNonce, slot.Slice(4, 8).ToArray());
        var aad = file.AsSpan(0, P).ToArray().Concat(slot[..(at + 32)].ToArray()).ToArray();
        var tag = new byte[16];
        using (var aes = new AesGcm(fileKey, 16)) aes.Encrypt(nonce, Array.Empty<byte>(), Array.Empty<byte>(), tag, aad);
        Assert.Equal(tag, slot.Slice(at + 32, 16).ToArray());
        Assert.True(slot[(at + 48)..].IndexOfAnyExcept((byte)0) < 0);
        Assert.True(file.AsSpan(P, s).SequenceEqual(file.AsSpan(P + s, s)));
    }

    // ---- the preamble -------------------------------------------------------------------------------------------

    [Theory]
    [InlineData(0u)]
    [InlineData(512u)]
    [InlineData(1000u)]
    [InlineData(1025u)]
    [InlineData(1536u + 1)]
    [InlineData(262_144u + 512)]
    [InlineData(0xFFFFFFFFu)]
    public async Task SlotSizesOutOfRangeOrNotAMultipleOf512AreMalformedWithoutAnyKmsCall(uint slotSize)
    {
        var file = await Encrypt(Bytes.Random(100, 1));
        BinaryPrimitives.WriteUInt32BigEndian(file.AsSpan(48), slotSize);
        Assert.Equal(EnvelopeError.MalformedHeader, (await Rejected(file)).Error);
        Assert.Equal(0, _provider.DecryptCalls);
    }

    [Fact]
    public async Task ALargerValidSlotSizeThanWrittenFailsCleanly()
    {
        var file = await Encrypt(Bytes.Random(100, 2));
        BinaryPrimitives.WriteUInt32BigEndian(file.AsSpan(48), 2048);
        var e = await Rejected(file);
        Assert.Contains(e.Error, new[] { EnvelopeError.MalformedHeader, EnvelopeError.Truncated, EnvelopeError.HeaderTampered });
    }

    [Fact]
    public async Task EveryBitOfThePreambleIsAuthenticated()
    {
        var file = await Encrypt(Bytes.Random(100, 3));
        for (int bit = 0; bit < P * 8; bit++)
        {
            var flipped = (byte[])file.Clone();
            flipped[bit / 8] ^= (byte)(1 << (bit % 8));
            var e = await Record.ExceptionAsync(() => Decrypt(flipped));
            Assert.True(e is EnvelopeException or KeyProviderException, $"bit {bit}: {e?.GetType().Name ?? "no error"}");
        }
    }

    [Fact]
    public async Task TruncationInsideTheSlotAreaIsTruncatedBeforeAnyKmsCall()
    {
        var file = await Encrypt(Bytes.Random(10, 4));
        int h = HeaderLength(file);
        foreach (int cut in new[] { P - 1, P, P + 1, P + 100, P + SlotSize(file), h - 1 })
            Assert.Equal(EnvelopeError.Truncated, (await Rejected(file[..cut])).Error);
        Assert.Equal(0, _provider.DecryptCalls);
    }

    // ---- one slot bad: the other is used; both bad: an error --------------------------------------------------

    public static TheoryData<string> SlotDamage => new() { "padding", "generation 0", "tag", "commitment", "count above limit", "field past end" };

    private static void Damage(byte[] file, int slot, string how)
    {
        int o = SlotOffset(file, slot);
        int content = ContentLength(file);
        switch (how)
        {
            case "padding": file[o + SlotSize(file) - 1] = 1; break;
            case "generation 0": BinaryPrimitives.WriteUInt32BigEndian(file.AsSpan(o), 0); break;
            case "tag": file[o + content - 3] ^= 0x40; break;
            case "commitment": file[o + content - 30] ^= 0x01; break;
            case "count above limit":
                int l = BinaryPrimitives.ReadUInt16BigEndian(file.AsSpan(o + 12));
                BinaryPrimitives.WriteUInt16BigEndian(file.AsSpan(o + 14 + l), 9);
                break;
            case "field past end": BinaryPrimitives.WriteUInt16BigEndian(file.AsSpan(o + 12), 0xFFFF); break; // the context runs past the slot
            default: throw new ArgumentException(how);
        }
    }

    [Theory]
    [MemberData(nameof(SlotDamage))]
    public async Task ADamagedSlot_FallsBackToTheOtherAndIsReported(string how)
    {
        var plaintext = Bytes.Random(F + 5, 5);
        var file = await Encrypt(plaintext);
        foreach (int bad in new[] { 0, 1 })
        {
            var damaged = (byte[])file.Clone();
            Damage(damaged, bad, how);
            var output = new MemoryStream();
            var result = await Envelope.DecryptAsync(new MemoryStream(damaged), output, _provider);
            Assert.Equal(plaintext, output.ToArray());
            Assert.Equal(1 - bad, result.Header.ActiveSlot!.Index);
            Assert.Equal(EnvelopeSlotState.Damaged, result.Header.Slots[bad].State);
            Assert.Contains($"slot {bad}", result.SlotProblem);
            Assert.Equal([result.Header.Slots[bad]], result.Header.DamagedSlots);
        }
    }

    [Theory]
    [InlineData("padding", EnvelopeError.MalformedHeader)]
    [InlineData("generation 0", EnvelopeError.MalformedHeader)]
    [InlineData("tag", EnvelopeError.HeaderTampered)]
    [InlineData("commitment", EnvelopeError.KeyCommitmentMismatch)]
    [InlineData("count above limit", EnvelopeError.LimitExceeded)]
    public async Task BothSlotsDamaged_IsAnErrorAndNoOutput(string how, EnvelopeError expected)
    {
        var file = await Encrypt(Bytes.Random(100, 6));
        Damage(file, 0, how);
        Damage(file, 1, how);
        string source = _dir.File("in.ekms");
        await File.WriteAllBytesAsync(source, file);
        var e = await Assert.ThrowsAsync<EnvelopeException>(() => EnvelopeFileOperations.DecryptFileAsync(source, _dir.File("out"), _provider));
        Assert.Equal(expected, e.Error);
        Assert.Equal(["in.ekms"], Directory.GetFiles(_dir.Path).Select(Path.GetFileName));
    }

    [Fact]
    public async Task WhenNeitherSlotParses_TheErrorIsSlot0s_AndKmsIsNotCalled()
    {
        var file = await Encrypt(Bytes.Random(100, 7));
        Damage(file, 0, "generation 0");
        Damage(file, 1, "padding");
        var e = await Rejected(file);
        Assert.Equal(EnvelopeError.MalformedHeader, e.Error);
        Assert.Contains("generation 0", e.Message);
        Assert.Equal(0, _provider.DecryptCalls);
    }

    [Fact]
    public async Task EqualGenerationsWithDifferentBytes_TheSlotThatAuthenticatesWins()
    {
        // An honest writer never leaves two different slots with one generation, but a torn write can (its first
        // sector old, a later one new); so this is not fatal: the slot that authenticates wins, the other is damaged.
        var file = await Encrypt(Bytes.Random(100, 8));
        int keyIdAt = file.AsSpan(SlotOffset(file, 1)).IndexOf("key-1"u8.ToArray()) + SlotOffset(file, 1);
        file[keyIdAt + 4] = (byte)'9'; // slot 1 now names key-9, same generation
        var result = await Decrypt(file);
        Assert.Equal(0, result.Header.ActiveSlot!.Index);
        Assert.Equal(EnvelopeSlotState.Damaged, result.Header.Slots[1].State);
        Assert.Equal(1u, result.Header.Slots[1].Generation);
    }

    [Fact]
    public async Task AHigherGenerationThatDoesNotAuthenticate_FallsBackToTheOlderSlot()
    {
        var file = await Encrypt(Bytes.Random(100, 9));
        BinaryPrimitives.WriteUInt32BigEndian(file.AsSpan(SlotOffset(file, 1)), 7);
        var result = await Decrypt(file);
        Assert.Equal(0, result.Header.ActiveSlot!.Index);
        Assert.Equal(EnvelopeSlotState.Damaged, result.Header.Slots[1].State);
        Assert.Equal(1, _provider.DecryptCalls); // the same entry in both slots: one unwrap
    }

    [Fact]
    public async Task DifferentCommitmentsInTheTwoSlots_OnlyTheCommittingSlotIsUsed()
    {
        // Slot 1 is taken from a file with another data key: its own entry unwraps, but to a key that does not
        // commit to slot 0's value, and slot 0 (generation 1) never authenticates with slot 1's key.
        var file = await Encrypt(Bytes.Random(100, 10));
        using var other = _provider.NewKey("key-1", "acs:kms:cn-test:1234:key/key-2");
        var foreign = await Encrypt(Bytes.Random(100, 10), other);
        Assert.Equal(SlotSize(file), SlotSize(foreign));
        BinaryPrimitives.WriteUInt32BigEndian(foreign.AsSpan(SlotOffset(foreign, 1)), 5); // tried first
        foreign.AsSpan(SlotOffset(foreign, 1), SlotSize(foreign)).CopyTo(file.AsSpan(SlotOffset(file, 1)));
        var result = await Decrypt(file);
        Assert.Equal(0, result.Header.ActiveSlot!.Index);
        Assert.Equal(EnvelopeSlotState.Damaged, result.Header.Slots[1].State);
    }

    [Fact]
    public async Task EveryBitOfEachSlotsContentIsAuthenticated_AndTheOtherSlotTakesOver()
    {
        var plaintext = Bytes.Random(50, 11);
        var file = await Encrypt(plaintext);
        int content = ContentLength(file);
        var provider = new CachingDataKeyProvider(_provider);
        for (int bit = 0; bit < (content + 4) * 8; bit++)
        {
            var one = (byte[])file.Clone();
            one[SlotOffset(file, 0) + bit / 8] ^= (byte)(1 << (bit % 8));
            var result = await Decrypt(one, provider);
            Assert.True(result.Header.ActiveSlot!.Index == 1, $"bit {bit}: slot 0 was used");

            one[SlotOffset(file, 1) + bit / 8] ^= (byte)(1 << (bit % 8));
            var e = await Record.ExceptionAsync(() => Decrypt(one, provider));
            Assert.True(e is EnvelopeException or KeyProviderException, $"bit {bit} in both slots: {e?.GetType().Name ?? "no error"}");
        }
        provider.Dispose();
    }

    // ---- the body: the same as v1 ----------------------------------------------------------------------------

    [Fact]
    public async Task FrameTamperingAndTruncationOfAV2BodyFail()
    {
        var file = await Encrypt(Bytes.Random(2 * F + 100, 12));
        int h = HeaderLength(file);
        foreach (int at in new[] { h, h + 5, h + F + 3, h + F + 16 + 1, file.Length - 1 })
        {
            var t = (byte[])file.Clone();
            t[at] ^= 1;
            var e = await Rejected(t);
            Assert.Equal(EnvelopeError.FrameTampered, e.Error);
        }
        foreach (int cut in new[] { h, h + 15, h + F + 16, file.Length - 1 })
        {
            var e = await Rejected(file[..cut]);
            Assert.Contains(e.Error, new[] { EnvelopeError.Truncated, EnvelopeError.FrameTampered });
        }
        var extended = file.Concat(new byte[] { 0 }).ToArray();
        Assert.Equal(EnvelopeError.FrameTampered, (await Rejected(extended)).Error);
    }

    [Fact]
    public async Task AV1BodyUnderAV2HeaderDecrypts_TheSameKeySchedule()
    {
        // The premise of converting v1 to v2 by rewriting the header only: the body does not depend on the version.
        var plaintext = Bytes.Random(F + 77, 13);
        var v1 = await EnvelopeRoundTripTests.EncryptAsync(plaintext, _key, Context, new EnvelopeEncryptOptions { FrameLength = F, FormatVersion = 1 });
        var v1Header = await EnvelopeHeader.ReadAsync(new MemoryStream(v1));
        byte[] fileKey = new byte[32];
        var commitment = new byte[32];
        KeySchedule.Derive(_key.Plaintext, v1Header.MessageId, 1, fileKey, commitment);
        var preamble = EnvelopeHeader.CreatePreamble(F, v1Header.MessageId, 1024);
        var slot = EnvelopeHeader.CreateSlot(preamble, 1024, 1, Context, v1Header.WrappedKeys, commitment, fileKey);
        var v2 = preamble.Concat(slot).Concat(slot).Concat(v1[v1Header.Length..]).ToArray();
        Assert.Equal(plaintext, await EnvelopeRoundTripTests.DecryptAsync(v2, _provider));
    }
}
