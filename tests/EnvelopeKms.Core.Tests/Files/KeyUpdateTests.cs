using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using EnvelopeKms.Files;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using EnvelopeKms.Legacy;
using EnvelopeKms.Tests.Format;
using EnvelopeKms.Tests.Keys;
using Xunit;

namespace EnvelopeKms.Tests.Files;

/// <summary>
/// Re-wrapping (docs/format.md §12.5, Update-EnvelopeFileKey): add, remove, replace; the body bytes never change;
/// a crash at any point leaves a file that decrypts; removed entries leave the file; v1 and overflowing key lists
/// are rewritten whole; a batch costs one Decrypt and one Encrypt per added key; every refusal leaves the file as it was.
/// </summary>
public sealed class KeyUpdateTests : IDisposable
{
    private const int F = 4096;
    private readonly TempDir _dir = new();
    private readonly InMemoryKeyProvider _kms = new();
    private static readonly EncryptionContext Context = EncryptionContext.Create(new Dictionary<string, string> { ["dept"] = "finance" });

    public void Dispose() => _dir.Dispose();

    private async Task<(string Path, byte[] Plaintext)> NewFile(string name, int size = 3 * F + 10, byte version = 2, DataKey? key = null, params string[] keyIds)
    {
        using var own = key is null ? _kms.NewKey(keyIds.Length == 0 ? ["key-1"] : keyIds) : null;
        var plaintext = Bytes.Random(size, name.GetHashCode());
        var file = await EnvelopeRoundTripTests.EncryptAsync(plaintext, key ?? own!, Context, new EnvelopeEncryptOptions { FrameLength = F, FormatVersion = version });
        string path = _dir.File(name);
        await File.WriteAllBytesAsync(path, file);
        return (path, plaintext);
    }

    private EnvelopeKeyUpdater Updater(EnvelopeKeyChange change, IDataKeyProvider? unwrapper = null)
        => new(unwrapper ?? _kms, _kms, change);

    private static byte[] BodyHash(byte[] file)
    {
        var header = EnvelopeHeader.ReadAsync(new MemoryStream(file)).Result;
        return SHA256.HashData(file.AsSpan(header.Length));
    }

    /// <summary>Decrypts with only the given keys allowed, as Unprotect -AllowedKeyId does.</summary>
    private async Task<(byte[] Plaintext, EnvelopeDecryptResult Result)> DecryptWith(string path, params string[] allowed)
    {
        var output = new MemoryStream();
        await using var input = File.OpenRead(path);
        var result = await Envelope.DecryptAsync(input, output, new OnlyKeys(_kms, allowed));
        return (output.ToArray(), result);
    }

    private sealed class OnlyKeys(IDataKeyProvider inner, string[] allowed) : IDataKeyProvider
    {
        public Task<DataKey> GenerateDataKeyAsync(IReadOnlyList<string> keyIds, EncryptionContext context, CancellationToken cancellationToken) => throw new NotSupportedException();
        public Task<DataKey> DecryptDataKeyAsync(IReadOnlyList<WrappedDataKey> entries, EncryptionContext context, CancellationToken cancellationToken)
        {
            var mine = entries.Where(e => allowed.Contains(e.KeyId)).ToList();
            if (mine.Count == 0) throw new KeyProviderException(KeyProviderError.NoMatchingKey, "No allowed entry.");
            return inner.DecryptDataKeyAsync(mine, context, cancellationToken);
        }
    }

    // ---- add, remove, replace ------------------------------------------------------------------------------------

    [Fact]
    public async Task AddingAKey_RewritesOnlyTheHeader_AndTheNewKeyAloneDecrypts()
    {
        var (path, plaintext) = await NewFile("a.ekms");
        var before = await File.ReadAllBytesAsync(path);
        var result = await Updater(new EnvelopeKeyChange { Add = ["key-dr"] }).UpdateFileAsync(path);

        var after = await File.ReadAllBytesAsync(path);
        Assert.Equal(before.Length, after.Length);
        Assert.Equal(BodyHash(before), BodyHash(after));
        Assert.True(before.AsSpan(0, EnvelopeFormat.PreambleSize).SequenceEqual(after.AsSpan(0, EnvelopeFormat.PreambleSize)));
        Assert.True(result.Changed);
        Assert.False(result.Rewritten);
        Assert.Equal(2u, result.Generation);
        Assert.Equal(["key-1"], result.OldKeys.Select(k => k.KeyId));
        Assert.Equal(["key-1", "key-dr"], result.NewKeys.Select(k => k.KeyId));
        var (back, decrypted) = await DecryptWith(path, "key-dr");
        Assert.Equal(plaintext, back);
        Assert.Equal("key-dr", decrypted.KeyId);
        Assert.Equal(2u, decrypted.Header.Generation);
        Assert.All(decrypted.Header.Slots, s => Assert.Equal(EnvelopeSlotState.Current, s.State));
        Assert.Equal(1, _kms.EncryptCalls);
        Assert.Equal(2, _kms.DecryptCalls); // one for the update (the body is not read), one for DecryptWith
    }

    [Fact]
    public async Task RemovingAKey_DeletesItsBlobFromTheFile_AndItNoLongerDecrypts()
    {
        var (path, plaintext) = await NewFile("r.ekms", keyIds: ["key-1", "key-old"]);
        var oldBlob = (await EnvelopeFileOperations.ReadHeaderAsync(path)).WrappedKeys[1].CiphertextBlob;
        var before = await File.ReadAllBytesAsync(path);
        Assert.Equal(2, Occurrences(before, oldBlob)); // once per slot

        var result = await Updater(new EnvelopeKeyChange { Remove = ["key-old"] }).UpdateFileAsync(path);

        var after = await File.ReadAllBytesAsync(path);
        Assert.Equal(0, Occurrences(after, oldBlob));
        Assert.Equal(BodyHash(before), BodyHash(after));
        Assert.Equal(["key-1"], result.NewKeys.Select(k => k.KeyId));
        await Assert.ThrowsAsync<KeyProviderException>(() => DecryptWith(path, "key-old"));
        Assert.Equal(plaintext, (await DecryptWith(path, "key-1")).Plaintext);
        Assert.Equal(0, _kms.EncryptCalls);
    }

    private static int Occurrences(byte[] haystack, string needle)
    {
        var n = Encoding.ASCII.GetBytes(needle);
        int count = 0;
        for (int at = 0; (at = haystack.AsSpan(at).IndexOf(n) is var i && i >= 0 ? at + i : -1) >= 0; at += n.Length) count++;
        return count;
    }

    [Fact]
    public async Task ReplacingTheSet_KeepsEntriesOfKeysAlreadyThere_AndWrapsOnlyTheNewOnes()
    {
        var (path, plaintext) = await NewFile("s.ekms", keyIds: ["key-1", "key-2"]);
        var old = await EnvelopeFileOperations.ReadHeaderAsync(path);
        var result = await Updater(new EnvelopeKeyChange { Replace = ["key-2", "key-3"] }).UpdateFileAsync(path);
        Assert.Equal(["key-2", "key-3"], result.NewKeys.Select(k => k.KeyId));
        Assert.Equal(old.WrappedKeys[1], result.NewKeys[0]); // kept as it was: no new wrap
        Assert.Equal(1, _kms.EncryptCalls);
        Assert.Equal(plaintext, (await DecryptWith(path, "key-3")).Plaintext);
        await Assert.ThrowsAsync<KeyProviderException>(() => DecryptWith(path, "key-1"));
    }

    [Fact]
    public async Task RemoveAndAddTogether_CanReplaceTheOnlyKey()
    {
        var (path, plaintext) = await NewFile("ra.ekms");
        var result = await Updater(new EnvelopeKeyChange { Remove = ["key-1"], Add = ["key-new"] }).UpdateFileAsync(path);
        Assert.Equal(["key-new"], result.NewKeys.Select(k => k.KeyId));
        Assert.Equal(plaintext, (await DecryptWith(path, "key-new")).Plaintext);
    }

    [Fact]
    public async Task AnAliasResolvesToTheKeyItNames_ForRemoval()
    {
        _kms.Aliases["alias/dr"] = "key-2";
        var (path, _) = await NewFile("al.ekms", keyIds: ["key-1", "key-2"]);
        var result = await Updater(new EnvelopeKeyChange { Remove = ["alias/dr"] }).UpdateFileAsync(path);
        Assert.Equal(["key-1"], result.NewKeys.Select(k => k.KeyId));
        Assert.Equal(1, _kms.ResolveCalls);
    }

    [Fact]
    public async Task AnArnMatchesTheKeyIdOfAnEntry()
    {
        var (path, _) = await NewFile("arn.ekms", keyIds: ["key-1", "key-2"]);
        var result = await Updater(new EnvelopeKeyChange { Remove = ["acs:kms:cn-test:1234:key/key-2"] }).UpdateFileAsync(path);
        Assert.Equal(["key-1"], result.NewKeys.Select(k => k.KeyId));
    }

    [Fact]
    public async Task AddingAKeyAlreadyThere_ChangesNothingAndCallsNoEncrypt()
    {
        var (path, _) = await NewFile("same.ekms", keyIds: ["key-1", "key-2"]);
        var before = await File.ReadAllBytesAsync(path);
        var result = await Updater(new EnvelopeKeyChange { Add = ["key-2"] }).UpdateFileAsync(path);
        Assert.False(result.Changed);
        Assert.Equal(before, await File.ReadAllBytesAsync(path));
        Assert.Equal(0, _kms.EncryptCalls);
    }

    [Fact]
    public async Task SuccessiveUpdates_RaiseTheGeneration_AndUseAFreshHeaderNonceEachTime()
    {
        var (path, plaintext) = await NewFile("g.ekms");
        var nonces = new HashSet<string>();
        for (int i = 0; i < 5; i++)
        {
            var result = await Updater(new EnvelopeKeyChange { Add = [$"key-{i + 10}"] }).UpdateFileAsync(path);
            Assert.Equal((uint)(i + 2), result.Generation);
            var bytes = await File.ReadAllBytesAsync(path);
            Assert.True(nonces.Add(Convert.ToHexString(bytes.AsSpan(EnvelopeFormat.PreambleSize + 4, 8))));
        }
        var final = await DecryptWith(path, "key-14");
        Assert.Equal(plaintext, final.Plaintext);
        Assert.Equal(6u, final.Result.Header.Generation);
    }

    // ---- crashes ---------------------------------------------------------------------------------------------------

    [Fact]
    public async Task ACrashAfterTheFirstSlotWrite_LeavesTheNewListAndAStaleSlot_WhichTheNextUpdateRepairs()
    {
        var (path, plaintext) = await NewFile("c.ekms");
        var crashing = new EnvelopeKeyUpdater(_kms, _kms, new EnvelopeKeyChange { Add = ["key-dr"] }) { AfterSlotWrite = step => { if (step == 0) throw new IOException("simulated crash"); } };
        await Assert.ThrowsAsync<IOException>(() => crashing.UpdateFileAsync(path));

        var (back, result) = await DecryptWith(path, "key-dr");
        Assert.Equal(plaintext, back);
        Assert.Equal(1, result.Header.ActiveSlot!.Index); // both slots were current: slot 1 is written first
        Assert.Equal(EnvelopeSlotState.Stale, result.Header.Slots[0].State);
        Assert.Contains("interrupted", result.SlotProblem);

        var repair = await Updater(new EnvelopeKeyChange { Add = ["key-dr"] }).UpdateFileAsync(path);
        Assert.True(repair.Changed);
        Assert.NotNull(repair.RepairedSlotProblem);
        Assert.Equal(3u, repair.Generation);
        var repaired = await DecryptWith(path, "key-1");
        Assert.All(repaired.Result.Header.Slots, s => Assert.Equal(EnvelopeSlotState.Current, s.State));
    }

    [Fact]
    public async Task AfterAnInterruptedRemoval_ACallerAllowedOnlyTheRemovedKey_UsesTheOlderSlot_AndIsToldWhy()
    {
        var (path, plaintext) = await NewFile("ir.ekms", keyIds: ["key-1", "key-old"]);
        var crashing = new EnvelopeKeyUpdater(_kms, _kms, new EnvelopeKeyChange { Remove = ["key-old"] }) { AfterSlotWrite = step => { if (step == 0) throw new IOException("simulated crash"); } };
        await Assert.ThrowsAsync<IOException>(() => crashing.UpdateFileAsync(path));

        var (back, result) = await DecryptWith(path, "key-old");
        Assert.Equal(plaintext, back);
        Assert.Equal(0, result.Header.ActiveSlot!.Index);
        Assert.Contains("could not be verified", result.SlotProblem);
        var viaNew = await DecryptWith(path, "key-1");
        Assert.Equal(1, viaNew.Result.Header.ActiveSlot!.Index);
        Assert.Equal(["key-1"], viaNew.Result.Header.WrappedKeys.Select(k => k.KeyId));
        Assert.Equal(EnvelopeSlotState.Stale, viaNew.Result.Header.Slots[0].State);
    }

    [Fact]
    public async Task ATornFirstWrite_StillDecryptsToTheOldKeyList()
    {
        var (path, plaintext) = await NewFile("t.ekms");
        var original = await File.ReadAllBytesAsync(path);
        await Updater(new EnvelopeKeyChange { Add = ["key-dr"] }).UpdateFileAsync(path);
        var updated = await File.ReadAllBytesAsync(path);
        int s = (int)BinaryPrimitives.ReadUInt32BigEndian(original.AsSpan(48));
        int slot1 = EnvelopeFormat.PreambleSize + s;
        // The first write goes to slot 1. Tear it: a prefix of the new bytes, then the old bytes, as a crash leaves it
        // (and the reverse: a torn write whose first sector did not reach the disk but a later one did).
        foreach (int cut in new[] { 1, 4, 12, 100, 200, s / 2, s - 1 })
        {
            foreach (bool prefixNew in new[] { true, false })
            {
                var torn = (byte[])original.Clone();
                if (prefixNew) updated.AsSpan(slot1, cut).CopyTo(torn.AsSpan(slot1));
                else updated.AsSpan(slot1 + cut, s - cut).CopyTo(torn.AsSpan(slot1 + cut));
                if (torn.AsSpan(slot1, s).SequenceEqual(updated.AsSpan(slot1, s))) continue; // the tear changed nothing that matters
                await File.WriteAllBytesAsync(path, torn);
                var (back, result) = await DecryptWith(path, "key-1");
                Assert.Equal(plaintext, back);
                Assert.Equal(["key-1"], result.Header.WrappedKeys.Select(k => k.KeyId));
                Assert.Equal(0, result.Header.ActiveSlot!.Index);
                // Only the torn slot has a key-dr entry: it unwraps, but that slot does not authenticate.
                var e = await Record.ExceptionAsync(() => DecryptWith(path, "key-dr"));
                Assert.True(e is EnvelopeException { Error: EnvelopeError.HeaderTampered or EnvelopeError.KeyCommitmentMismatch } or KeyProviderException, $"cut {cut}: {e}");
            }
        }
    }

    [Fact]
    public async Task ATornSecondWrite_DecryptsToTheNewKeyList()
    {
        var (path, plaintext) = await NewFile("t2.ekms");
        var original = await File.ReadAllBytesAsync(path);
        await Updater(new EnvelopeKeyChange { Add = ["key-dr"] }).UpdateFileAsync(path);
        var updated = await File.ReadAllBytesAsync(path);
        int s = (int)BinaryPrimitives.ReadUInt32BigEndian(original.AsSpan(48));
        int slot0 = EnvelopeFormat.PreambleSize;
        var torn = (byte[])updated.Clone();
        original.AsSpan(slot0 + 60, s - 60).CopyTo(torn.AsSpan(slot0 + 60)); // slot 0 only partly rewritten
        await File.WriteAllBytesAsync(path, torn);
        var (back, result) = await DecryptWith(path, "key-dr");
        Assert.Equal(plaintext, back);
        Assert.Equal(1, result.Header.ActiveSlot!.Index);
        Assert.Equal(EnvelopeSlotState.Damaged, result.Header.Slots[0].State);
    }

    [Fact]
    public async Task ADamagedSlotIsWrittenFirst_AndTheUpdateRepairsIt()
    {
        var (path, plaintext) = await NewFile("d.ekms");
        var bytes = await File.ReadAllBytesAsync(path);
        bytes[EnvelopeFormat.PreambleSize + 1000] = 7; // slot 0's padding
        await File.WriteAllBytesAsync(path, bytes);
        var order = new List<int>();
        var updater = new EnvelopeKeyUpdater(_kms, _kms, new EnvelopeKeyChange { Add = ["key-dr"] }) { AfterSlotWrite = order.Add };
        var result = await updater.UpdateFileAsync(path);
        Assert.Contains("slot 0", result.RepairedSlotProblem);
        var after = await DecryptWith(path, "key-dr");
        Assert.Equal(plaintext, after.Plaintext);
        Assert.All(after.Result.Header.Slots, s => Assert.Equal(EnvelopeSlotState.Current, s.State));
        Assert.Equal([0, 1], order);
    }

    [Fact]
    public async Task AGarbageGenerationInADamagedSlot_IsCountedPast()
    {
        var (path, _) = await NewFile("gen.ekms");
        var bytes = await File.ReadAllBytesAsync(path);
        int s = (int)BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(48));
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(EnvelopeFormat.PreambleSize + s), 41); // slot 1: tag fails now
        await File.WriteAllBytesAsync(path, bytes);
        var result = await Updater(new EnvelopeKeyChange { Add = ["key-dr"] }).UpdateFileAsync(path);
        Assert.Equal(42u, result.Generation);
    }

    // ---- full rewrites -------------------------------------------------------------------------------------------

    [Fact]
    public async Task AV1File_IsConvertedToV2_WithTheSameBodyBytes()
    {
        var (path, plaintext) = await NewFile("v1.ekms", version: 1);
        var before = await File.ReadAllBytesAsync(path);
        var result = await Updater(new EnvelopeKeyChange { Add = ["key-dr"] }).UpdateFileAsync(path);
        Assert.True(result.Rewritten);
        Assert.Equal(1, result.OldVersion);
        Assert.Equal(1u, result.Generation);
        var after = await File.ReadAllBytesAsync(path);
        Assert.Equal(2, after[8]);
        Assert.Equal(BodyHash(before), BodyHash(after));
        Assert.Equal(plaintext, (await DecryptWith(path, "key-dr")).Plaintext);
        Assert.Equal(plaintext, (await DecryptWith(path, "key-1")).Plaintext);
        Assert.Empty(Directory.GetFiles(_dir.Path, "*.ekms-tmp", new EnumerationOptions { AttributesToSkip = 0 }));
    }

    [Fact]
    public async Task AKeyListThatOutgrowsTheSlot_IsRewrittenWithALargerSlot()
    {
        var (path, plaintext) = await NewFile("big.ekms");
        var before = await File.ReadAllBytesAsync(path);
        string LongId(int i) => $"acs:kms:cn-test:1234567890:key/{new string('k', 180)}-{i}";
        var result = await Updater(new EnvelopeKeyChange { Add = [LongId(1), LongId(2), LongId(3), LongId(4), LongId(5)] }).UpdateFileAsync(path);
        Assert.True(result.Rewritten);
        Assert.True(result.SlotSize > 1024);
        Assert.Equal(2u, result.Generation);
        var after = await File.ReadAllBytesAsync(path);
        Assert.Equal((int)result.SlotSize, (int)BinaryPrimitives.ReadUInt32BigEndian(after.AsSpan(48)));
        Assert.Equal(BodyHash(before), BodyHash(after));
        Assert.Equal(plaintext, (await DecryptWith(path, LongId(5))).Plaintext);
        // And the next small change fits again, in place.
        var next = await Updater(new EnvelopeKeyChange { Remove = [LongId(1)] }).UpdateFileAsync(path);
        Assert.False(next.Rewritten);
        Assert.Equal(3u, next.Generation);
    }

    [Fact]
    public async Task TheFilesPermissionsAndSymbolicLinksSurviveARewrite()
    {
        if (OperatingSystem.IsWindows()) return;
        var (path, plaintext) = await NewFile("perm.ekms", version: 1);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        string link = _dir.File("link.ekms");
        File.CreateSymbolicLink(link, path);
        await Updater(new EnvelopeKeyChange { Add = ["key-dr"] }).UpdateFileAsync(link);
        Assert.NotNull(new FileInfo(link).LinkTarget);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead, File.GetUnixFileMode(path));
        Assert.Equal(2, (await File.ReadAllBytesAsync(path))[8]);
        Assert.Equal(plaintext, (await DecryptWith(link, "key-dr")).Plaintext);
    }

    // ---- batches -------------------------------------------------------------------------------------------------

    [Fact]
    public async Task ABatchSharingOneDataKey_CostsOneDecryptAndOneEncryptPerAddedKey()
    {
        using var shared = _kms.NewKey("key-1");
        var paths = new List<string>();
        for (int i = 0; i < 40; i++) paths.Add((await NewFile($"b{i}.ekms", size: 100 + i, key: shared)).Path);
        using var other = _kms.NewKey("key-1");
        paths.Add((await NewFile("other.ekms", size: 10, key: other)).Path); // a second data key
        _kms.DecryptCalls = 0;
        using var cache = new CachingDataKeyProvider(_kms);
        var updater = new EnvelopeKeyUpdater(cache, _kms, new EnvelopeKeyChange { Add = ["key-dr", "key-dr2"] });
        var results = await Task.WhenAll(paths.Select(p => Task.Run(() => updater.UpdateFileAsync(p))));
        Assert.All(results, r => Assert.Equal(["key-1", "key-dr", "key-dr2"], r.NewKeys.Select(k => k.KeyId)));
        Assert.Equal(2, _kms.DecryptCalls);      // one per distinct wrapped key
        Assert.Equal(2 * 2, _kms.EncryptCalls);  // one per (data key, added key)
        // Files of one data key share the new entries.
        Assert.Single(results.Take(40).Select(r => r.NewKeys[1].CiphertextBlob).Distinct());
    }

    // ---- refusals: the file is untouched ---------------------------------------------------------------------------

    private async Task<Exception> RefusedAndUntouched(string path, EnvelopeKeyChange change, IDataKeyProvider? unwrapper = null)
    {
        var before = await File.ReadAllBytesAsync(path);
        var e = await Record.ExceptionAsync(() => Updater(change, unwrapper).UpdateFileAsync(path));
        Assert.NotNull(e);
        Assert.Equal(before, await File.ReadAllBytesAsync(path));
        Assert.Single(Directory.GetFiles(_dir.Path));
        return e;
    }

    [Fact]
    public async Task RemovingTheLastKey_IsRefused()
    {
        var (path, _) = await NewFile("last.ekms");
        var e = Assert.IsType<EnvelopeKeyUpdateException>(await RefusedAndUntouched(path, new EnvelopeKeyChange { Remove = ["key-1"] }));
        Assert.Equal(EnvelopeKeyUpdateError.LastKeyRemoved, e.Error);
    }

    [Fact]
    public async Task RemovingAKeyNotInTheFile_IsRefused()
    {
        var (path, _) = await NewFile("nf.ekms", keyIds: ["key-1", "key-2"]);
        var e = Assert.IsType<EnvelopeKeyUpdateException>(await RefusedAndUntouched(path, new EnvelopeKeyChange { Remove = ["key-9"], Add = ["key-3"] }));
        Assert.Equal(EnvelopeKeyUpdateError.KeyNotInFile, e.Error);
        Assert.Equal(0, _kms.EncryptCalls);
    }

    [Fact]
    public async Task MoreKeysThanTheLimit_IsRefused()
    {
        var (path, _) = await NewFile("many.ekms", keyIds: Enumerable.Range(1, 7).Select(i => $"key-{i}").ToArray());
        var e = Assert.IsType<EnvelopeKeyUpdateException>(await RefusedAndUntouched(path, new EnvelopeKeyChange { Add = ["key-8", "key-9"] }));
        Assert.Equal(EnvelopeKeyUpdateError.TooManyKeys, e.Error);
    }

    [Fact]
    public async Task ALegacyFile_IsUnsupported()
    {
        using var key = _kms.NewKey();
        string path = _dir.File("legacy.encrypted");
        await File.WriteAllBytesAsync(path, LegacyEnvelope.Encrypt(key, [1, 2, 3]));
        var e = Assert.IsType<EnvelopeKeyUpdateException>(await RefusedAndUntouched(path, new EnvelopeKeyChange { Add = ["key-2"] }));
        Assert.Equal(EnvelopeKeyUpdateError.UnsupportedFormat, e.Error);
    }

    [Fact]
    public async Task NotAnEnvelopeFile_IsNotEnvelope()
    {
        string path = _dir.File("plain.txt");
        await File.WriteAllTextAsync(path, "hello, world\n");
        var e = Assert.IsType<EnvelopeException>(await RefusedAndUntouched(path, new EnvelopeKeyChange { Add = ["key-2"] }));
        Assert.Equal(EnvelopeError.NotEnvelope, e.Error);
    }

    [Fact]
    public async Task AHeaderThatDoesNotVerify_IsRefusedBeforeAnyEncrypt()
    {
        var (path, _) = await NewFile("tamp.ekms");
        var bytes = await File.ReadAllBytesAsync(path);
        int s = (int)BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(48));
        var header = await EnvelopeFileOperations.ReadHeaderAsync(path);
        int tagEnd = EnvelopeFormat.PreambleSize + s - bytes.AsSpan(EnvelopeFormat.PreambleSize, s).ToArray().Reverse().TakeWhile(b => b == 0).Count();
        bytes[tagEnd - 1] ^= 0x80;
        bytes[EnvelopeFormat.PreambleSize + s + (tagEnd - EnvelopeFormat.PreambleSize) - 1] ^= 0x80; // both slots' tags
        await File.WriteAllBytesAsync(path, bytes);
        var e = Assert.IsType<EnvelopeException>(await RefusedAndUntouched(path, new EnvelopeKeyChange { Add = ["key-2"] }));
        Assert.Equal(EnvelopeError.HeaderTampered, e.Error);
        Assert.Equal(0, _kms.EncryptCalls);
        Assert.NotNull(header);
    }

    [Fact]
    public async Task AKmsRefusal_LeavesTheFileAsItWas()
    {
        var (path, _) = await NewFile("kms.ekms");
        _kms.Refused.Add("key-disabled");
        var e = Assert.IsType<KeyProviderException>(await RefusedAndUntouched(path, new EnvelopeKeyChange { Add = ["key-disabled"] }));
        Assert.Equal(KeyProviderError.Refused, e.Error);
    }

    [Fact]
    public async Task AFileInUseByAReader_IsNotUpdated()
    {
        var (path, _) = await NewFile("busy.ekms");
        var before = await File.ReadAllBytesAsync(path);
        await using (var reader = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read))
        {
            var e = await Assert.ThrowsAsync<IOException>(() => Updater(new EnvelopeKeyChange { Add = ["key-dr"] }).UpdateFileAsync(path));
            Assert.Contains("in use", e.Message);
        }
        Assert.Equal(before, await File.ReadAllBytesAsync(path));
    }

    [Fact]
    public void InvalidChanges_AreArgumentErrors()
    {
        Assert.Throws<ArgumentException>(() => Updater(new EnvelopeKeyChange()));
        Assert.Throws<ArgumentException>(() => Updater(new EnvelopeKeyChange { Replace = [] }));
        Assert.Throws<ArgumentException>(() => Updater(new EnvelopeKeyChange { Replace = ["a"], Add = ["b"] }));
        Assert.Throws<ArgumentException>(() => Updater(new EnvelopeKeyChange { Add = ["acs:kms:bad"] }));
    }

    [Fact]
    public async Task KeysUnwrappedForAnUpdate_AreWipedWithTheCache()
    {
        var (path, _) = await NewFile("w.ekms");
        var tracked = SecretBuffers.StartTrackingForTests();
        var cache = new CachingDataKeyProvider(_kms);
        await new EnvelopeKeyUpdater(cache, _kms, new EnvelopeKeyChange { Add = ["key-dr"] }).UpdateFileAsync(path);
        cache.Dispose();
        KeyWipingTests.AssertAllWiped(tracked);
    }
}
