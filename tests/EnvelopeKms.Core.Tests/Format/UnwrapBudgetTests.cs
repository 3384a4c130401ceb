using System.Buffers.Binary;
using System.Security.Cryptography;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using Xunit;

namespace EnvelopeKms.Tests.Format;

/// <summary>
/// Issue 18: a v2 header with 8 entries in each slot cost 16 Decrypt calls per file, and substituted keys made the
/// provider start over from the first entry each time. The KMS calls a file costs are bounded by the documented
/// number of entries (8 by default), across both slots.
/// </summary>
public class UnwrapBudgetTests
{
    private const int P = EnvelopeFormat.PreambleSize;
    private static readonly string[] EightKeys = Enumerable.Range(1, 8).Select(i => $"key-{i}").ToArray();

    /// <summary>A KMS stand-in that, like KmsDataKeyProvider, makes one Decrypt call per entry it tries, in order.</summary>
    private sealed class PerEntryKms : IDataKeyProvider
    {
        private readonly Dictionary<string, byte[]> _keys = new(StringComparer.Ordinal);
        public int Calls;

        public void Unwraps(WrappedDataKey entry, byte[] key) => _keys[entry.CiphertextBlob] = key;

        public Task<DataKey> GenerateDataKeyAsync(IReadOnlyList<string> keyIds, EncryptionContext context, CancellationToken cancellationToken)
            => throw new NotSupportedException();

        public Task<DataKey> DecryptDataKeyAsync(IReadOnlyList<WrappedDataKey> entries, EncryptionContext context, CancellationToken cancellationToken)
        {
            foreach (var entry in entries)
            {
                Calls++;
                if (_keys.TryGetValue(entry.CiphertextBlob, out var key))
                    return Task.FromResult(new DataKey(key, entries, entry.KeyId) { UnwrappedFrom = entry });
            }
            throw new KeyProviderException(KeyProviderError.Refused, "Refused.");
        }
    }

    private static int SlotSize(byte[] file) => (int)BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(48));

    private static async Task<byte[]> EightKeyFile(InMemoryKeyProvider writer)
    {
        using var key = writer.NewKey(EightKeys);
        return await EnvelopeRoundTripTests.EncryptAsync(Bytes.Random(100, 18), key);
    }

    private static async Task<Exception?> Decrypt(byte[] file, IDataKeyProvider provider)
        => await Record.ExceptionAsync(() => Envelope.DecryptAsync(new MemoryStream(file), Stream.Null, provider));

    [Fact]
    public async Task TheSameEightEntriesInBothSlots_AreTriedOnce()
    {
        var file = await EightKeyFile(new InMemoryKeyProvider());
        // Another generation makes slot 1 a candidate of its own (a byte-identical copy is the same candidate).
        BinaryPrimitives.WriteUInt32BigEndian(file.AsSpan(P + SlotSize(file)), 5);
        var kms = new PerEntryKms(); // refuses every entry
        Assert.IsType<KeyProviderException>(await Decrypt(file, kms));
        Assert.Equal(8, kms.Calls);
    }

    [Fact]
    public async Task EightOtherEntriesInTheOtherSlot_StillCostAtMostEightCalls()
    {
        var writer = new InMemoryKeyProvider();
        var file = await EightKeyFile(writer);
        var foreign = await EightKeyFile(writer);
        Assert.Equal(SlotSize(file), SlotSize(foreign));
        foreign.AsSpan(P + SlotSize(foreign), SlotSize(foreign)).CopyTo(file.AsSpan(P + SlotSize(file)));
        BinaryPrimitives.WriteUInt32BigEndian(file.AsSpan(P + SlotSize(file)), 5); // tried first
        var kms = new PerEntryKms();
        Assert.IsType<KeyProviderException>(await Decrypt(file, kms));
        Assert.Equal(8, kms.Calls);
    }

    [Fact]
    public async Task SubstitutedKeysAfterRefusedEntries_DoNotMakeTheRefusedOnesBeTriedAgain()
    {
        // Entries 1-4 are refused, entries 5-8 unwrap to keys that are not the file's. Starting over from entry 1
        // after each substituted key cost 5 + 5 + 5 + 5 calls per slot, twice.
        var file = await EightKeyFile(new InMemoryKeyProvider());
        var header = await EnvelopeHeader.ReadAsync(new MemoryStream(file), EnvelopeReadLimits.Default, default);
        var kms = new PerEntryKms();
        foreach (var entry in header.Slots[0].WrappedKeys.Skip(4)) kms.Unwraps(entry, RandomNumberGenerator.GetBytes(32));
        var e = Assert.IsType<EnvelopeException>(await Decrypt(file, kms));
        Assert.Equal(EnvelopeError.KeyCommitmentMismatch, e.Error);
        Assert.Equal(8, kms.Calls);
    }

    [Fact]
    public async Task AGenuineEntryAfterRefusedAndSubstitutedOnes_StillDecryptsWithinTheBudget()
    {
        var writer = new InMemoryKeyProvider();
        var file = await EightKeyFile(writer);
        var header = await EnvelopeHeader.ReadAsync(new MemoryStream(file), EnvelopeReadLimits.Default, default);
        var kms = new PerEntryKms();
        var entries = header.Slots[0].WrappedKeys;
        for (int i = 4; i < 7; i++) kms.Unwraps(entries[i], RandomNumberGenerator.GetBytes(32)); // 0-3 are refused
        using (var genuine = await writer.DecryptDataKeyAsync([entries[7]], header.Slots[0].EncryptionContext!, default))
            kms.Unwraps(entries[7], genuine.Plaintext.ToArray());
        Assert.Null(await Decrypt(file, kms));
        Assert.Equal(8, kms.Calls);
    }
}
