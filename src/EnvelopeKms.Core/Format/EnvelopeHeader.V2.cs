using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using EnvelopeKms.Crypto;
using EnvelopeKms.Keys;

namespace EnvelopeKms.Format;

/// <summary>What a reader made of one v2 header slot.</summary>
public enum EnvelopeSlotState
{
    /// <summary>Parsed; not (yet) authenticated.</summary>
    Unverified,
    /// <summary>The slot that authenticated, or a byte-identical copy of it.</summary>
    Current,
    /// <summary>Parsed, with an older generation than the current slot: an update was interrupted after its first write.</summary>
    Stale,
    /// <summary>Does not parse, does not authenticate, or cannot belong to the file next to the current slot.</summary>
    Damaged,
}

/// <summary>One of the two header slots of an EKMS v2 file (docs/format.md §12.2).</summary>
public sealed class EnvelopeHeaderSlot
{
    private readonly ReadOnlyMemory<byte> _bytes;

    internal EnvelopeHeaderSlot(int index, ReadOnlyMemory<byte> bytes, EnvelopeException? error, uint generation, EncryptionContext? context,
        IReadOnlyList<WrappedDataKey> wrappedKeys, int contentLength)
    {
        Index = index;
        _bytes = bytes;
        Error = error;
        Generation = generation;
        EncryptionContext = context;
        WrappedKeys = wrappedKeys;
        ContentLength = contentLength;
        State = error is null ? EnvelopeSlotState.Unverified : EnvelopeSlotState.Damaged;
    }

    /// <summary>0 or 1.</summary>
    public int Index { get; }

    /// <summary>The slot's generation (0 when the slot does not parse).</summary>
    public uint Generation { get; }

    /// <summary>The u32 at the start of the slot, whether or not the slot parses: writers count past it.</summary>
    public uint RawGeneration => BinaryPrimitives.ReadUInt32BigEndian(_bytes.Span);

    public EncryptionContext? EncryptionContext { get; }
    public IReadOnlyList<WrappedDataKey> WrappedKeys { get; }

    /// <summary>Why the slot is damaged, when it is.</summary>
    public EnvelopeException? Error { get; internal set; }

    public EnvelopeSlotState State { get; internal set; }

    public bool IsParsed => ContentLength > 0;

    /// <summary>Bytes from the generation through the tag; the rest of the slot is zero padding.</summary>
    internal int ContentLength { get; }

    internal ReadOnlySpan<byte> Bytes => _bytes.Span;
    internal ReadOnlySpan<byte> HeaderNonceSuffix => _bytes.Span.Slice(4, EnvelopeFormat.HeaderNonceSize);
    internal ReadOnlySpan<byte> Commitment => _bytes.Span.Slice(ContentLength - EnvelopeFormat.TagSize - EnvelopeFormat.CommitmentSize, EnvelopeFormat.CommitmentSize);
    internal ReadOnlySpan<byte> Tag => _bytes.Span.Slice(ContentLength - EnvelopeFormat.TagSize, EnvelopeFormat.TagSize);
    internal ReadOnlySpan<byte> AuthenticatedBytes => _bytes.Span[..(ContentLength - EnvelopeFormat.TagSize)];

    public override string ToString() => IsParsed ? $"slot {Index}: generation {Generation}, {State}" : $"slot {Index}: {State} ({Error?.Message})";
}

public sealed partial class EnvelopeHeader
{
    private readonly EnvelopeHeaderSlot[]? _slots;
    private readonly EnvelopeHeaderSlot[] _candidates = [];
    private EnvelopeHeaderSlot? _active;

    private EnvelopeHeader(byte[] bytes, ushort suiteId, int frameLength, int slotSize, EnvelopeHeaderSlot[] slots)
    {
        _bytes = bytes;
        Version = EnvelopeFormat.Version2;
        SuiteId = suiteId;
        FrameLength = frameLength;
        SlotSize = slotSize;
        _slots = slots;
        // Highest generation first; for equal generations slot 0 first; a byte-identical copy is the same candidate.
        var parsed = slots.Where(s => s.IsParsed).OrderByDescending(s => s.Generation).ThenBy(s => s.Index).ToList();
        if (parsed.Count == 2 && parsed[0].Bytes.SequenceEqual(parsed[1].Bytes)) parsed.RemoveAt(1);
        _candidates = parsed.ToArray();
    }

    /// <summary>v2: the size S of each slot; 0 for v1.</summary>
    public int SlotSize { get; }

    /// <summary>v2: both slots as read or written; empty for v1.</summary>
    public IReadOnlyList<EnvelopeHeaderSlot> Slots => _slots ?? [];

    /// <summary>v2: the slot that authenticated (null before authentication, and for v1).</summary>
    public EnvelopeHeaderSlot? ActiveSlot => _active;

    /// <summary>v2: the generation of the active slot, or before authentication of the first candidate; 0 for v1.</summary>
    public uint Generation => _slots is null ? 0 : CurrentSlot.Generation;

    /// <summary>v2: the slots that could not be used (a torn or damaged write); empty when both are intact.</summary>
    public IReadOnlyList<EnvelopeHeaderSlot> DamagedSlots => Slots.Where(s => s.State is EnvelopeSlotState.Damaged or EnvelopeSlotState.Stale).ToList();

    /// <summary>The v2 slots in the order a reader tries them.</summary>
    internal IReadOnlyList<EnvelopeHeaderSlot> Candidates => _candidates;

    private EnvelopeHeaderSlot CurrentSlot => _active ?? _candidates[0];

    /// <summary>The 52-byte v2 preamble.</summary>
    internal ReadOnlySpan<byte> Preamble => _bytes.AsSpan(0, EnvelopeFormat.PreambleSize);

    /// <summary>
    /// The slot size a writer uses for slot content of <paramref name="contentLength"/> bytes: twice the content,
    /// rounded up to a multiple of 512, at least 1,024 and at most 262,144 bytes (docs/format.md §12.1).
    /// </summary>
    public static int SlotSizeFor(int contentLength)
    {
        long doubled = 2L * contentLength;
        long rounded = (doubled + EnvelopeFormat.SlotSizeGranularity - 1) / EnvelopeFormat.SlotSizeGranularity * EnvelopeFormat.SlotSizeGranularity;
        int size = (int)Math.Clamp(rounded, EnvelopeFormat.MinSlotSize, EnvelopeFormat.MaxSlotSize);
        if (size < contentLength) throw new ArgumentException($"A header slot of {contentLength} bytes exceeds the largest slot size.");
        return size;
    }

    /// <summary>Length of a v2 slot's content (generation through tag) for this context and key list.</summary>
    internal static int SlotContentLength(EncryptionContext context, IReadOnlyList<WrappedDataKey> keys)
        => EnvelopeFormat.SlotFixedPrefixSize + KeyListLength(context, keys) + EnvelopeFormat.CommitmentSize + EnvelopeFormat.TagSize;

    /// <summary>The 52-byte v2 preamble.</summary>
    internal static byte[] CreatePreamble(int frameLength, ReadOnlySpan<byte> messageId, int slotSize)
    {
        var preamble = new byte[EnvelopeFormat.PreambleSize];
        WriteFixedPrefix(preamble, EnvelopeFormat.Version2, frameLength, messageId);
        BinaryPrimitives.WriteUInt32BigEndian(preamble.AsSpan(EnvelopeFormat.FixedPrefixSize), (uint)slotSize);
        return preamble;
    }

    /// <summary>
    /// Builds a sealed slot of <paramref name="slotSize"/> bytes: generation, header nonce (random unless given),
    /// context, wrapped keys, commitment, tag under <paramref name="fileKey"/>, zero padding.
    /// </summary>
    internal static byte[] CreateSlot(ReadOnlySpan<byte> preamble, int slotSize, uint generation, EncryptionContext context, IReadOnlyList<WrappedDataKey> keys,
        ReadOnlySpan<byte> commitment, ReadOnlySpan<byte> fileKey, ReadOnlySpan<byte> headerNonce = default)
    {
        if (generation == 0) throw new ArgumentOutOfRangeException(nameof(generation), "Generations start at 1.");
        CheckWrappedKeys(keys);
        int contentLength = SlotContentLength(context, keys);
        if (contentLength > slotSize) throw new ArgumentException($"The slot content ({contentLength} bytes) does not fit a {slotSize}-byte slot.");
        var slot = new byte[slotSize];
        var span = slot.AsSpan();
        BinaryPrimitives.WriteUInt32BigEndian(span, generation);
        var nonceSuffix = span.Slice(4, EnvelopeFormat.HeaderNonceSize);
        if (headerNonce.IsEmpty) RandomNumberGenerator.Fill(nonceSuffix);
        else headerNonce.CopyTo(nonceSuffix);
        int offset = EnvelopeFormat.SlotFixedPrefixSize;
        offset += WriteKeyList(span[offset..], context, keys);
        commitment.CopyTo(span.Slice(offset, EnvelopeFormat.CommitmentSize));
        offset += EnvelopeFormat.CommitmentSize;
        Span<byte> nonce = stackalloc byte[FrameCipher.NonceSize];
        V2HeaderNonce(nonceSuffix, nonce);
        var aad = new byte[preamble.Length + offset];
        preamble.CopyTo(aad);
        span[..offset].CopyTo(aad.AsSpan(preamble.Length));
        using var cipher = FrameCipher.Create(fileKey);
        cipher.Encrypt(nonce, ReadOnlySpan<byte>.Empty, Span<byte>.Empty, span.Slice(offset, EnvelopeFormat.TagSize), aad);
        return slot;
    }

    /// <summary>A v2 header-tag nonce: FF FF FF FF || the slot's 8-byte header nonce. Frames use 00 00 00 00 || u64(i).</summary>
    private static void V2HeaderNonce(ReadOnlySpan<byte> suffix, Span<byte> nonce)
    {
        nonce[..4].Fill(0xFF);
        suffix.CopyTo(nonce[4..]);
    }

    private static EnvelopeHeader CreateV2(DataKey dataKey, EncryptionContext context, int frameLength, ReadOnlySpan<byte> messageId, Span<byte> fileKey,
        ReadOnlySpan<byte> headerNonce)
    {
        int slotSize = SlotSizeFor(SlotContentLength(context, dataKey.WrappedKeys));
        var preamble = CreatePreamble(frameLength, messageId, slotSize);
        Span<byte> commitment = stackalloc byte[EnvelopeFormat.CommitmentSize];
        KeySchedule.Derive(dataKey.Plaintext, messageId, EnvelopeFormat.SuiteAes256GcmHkdfSha512Commit, fileKey, commitment);
        var slot = CreateSlot(preamble, slotSize, 1, context, dataKey.WrappedKeys, commitment, fileKey, headerNonce);
        var bytes = new byte[EnvelopeFormat.PreambleSize + 2 * slotSize];
        preamble.CopyTo(bytes, 0);
        slot.CopyTo(bytes, EnvelopeFormat.PreambleSize);
        slot.CopyTo(bytes, EnvelopeFormat.PreambleSize + slotSize);
        var header = FromBytesV2(bytes, EnvelopeReadLimits.Default with { MaxWrappedKeys = EnvelopeFormat.MaxWrappedKeysHardLimit });
        header._active = header._candidates[0];
        header.ClassifySlots();
        return header;
    }

    /// <summary>Parses a whole v2 header area (preamble and both slots) already read into memory.</summary>
    internal static EnvelopeHeader FromBytesV2(byte[] bytes, EnvelopeReadLimits limits)
    {
        int slotSize = (int)BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(EnvelopeFormat.FixedPrefixSize));
        int frameLength = (int)BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(12));
        ushort suite = BinaryPrimitives.ReadUInt16BigEndian(bytes.AsSpan(9));
        var slots = new EnvelopeHeaderSlot[2];
        for (int i = 0; i < 2; i++)
            slots[i] = ParseSlot(i, new ReadOnlyMemory<byte>(bytes, EnvelopeFormat.PreambleSize + i * slotSize, slotSize), limits);
        if (!slots[0].IsParsed && !slots[1].IsParsed) throw slots[0].Error!;
        return new EnvelopeHeader(bytes, suite, frameLength, slotSize, slots);
    }

    private static async Task<EnvelopeHeader> ReadV2Async(HeaderReader reader, ushort suite, int frameLength, EnvelopeReadLimits limits)
    {
        uint slotSize = BinaryPrimitives.ReadUInt32BigEndian((await reader.ReadAsync(4).ConfigureAwait(false)).Span);
        if (slotSize < EnvelopeFormat.MinSlotSize || slotSize > EnvelopeFormat.MaxSlotSize || slotSize % EnvelopeFormat.SlotSizeGranularity != 0)
        {
            throw new EnvelopeException(EnvelopeError.MalformedHeader,
                $"The header's slot size {slotSize} is not a multiple of {EnvelopeFormat.SlotSizeGranularity} between {EnvelopeFormat.MinSlotSize} and {EnvelopeFormat.MaxSlotSize}.");
        }
        _ = suite;
        _ = frameLength;
        return FromBytesV2(await reader.ReadRestIntoArrayAsync(2 * (int)slotSize).ConfigureAwait(false), limits);
    }

    /// <summary>Parses one slot; a slot that does not parse is returned damaged, with the reason.</summary>
    private static EnvelopeHeaderSlot ParseSlot(int index, ReadOnlyMemory<byte> slot, EnvelopeReadLimits limits)
    {
        try
        {
            var r = new SlotReader(slot.Span);
            uint generation = r.U32();
            if (generation == 0) throw new EnvelopeException(EnvelopeError.MalformedHeader, $"Header slot {index} has generation 0.");
            r.Skip(EnvelopeFormat.HeaderNonceSize);
            int ecLength = r.U16();
            if (!EncryptionContext.TryDecode(r.Take(ecLength), out var context, out var problem))
                throw new EnvelopeException(EnvelopeError.MalformedHeader, $"Header slot {index}'s encryption context is invalid: {problem}.");
            int count = r.U16();
            if (count == 0) throw new EnvelopeException(EnvelopeError.MalformedHeader, $"Header slot {index} has no wrapped data key.");
            int maxKeys = Math.Clamp(limits.MaxWrappedKeys, 1, EnvelopeFormat.MaxWrappedKeysHardLimit);
            if (count > maxKeys)
                throw new EnvelopeException(EnvelopeError.LimitExceeded, $"Header slot {index} has {count} wrapped data keys; at most {maxKeys} are accepted.");
            var keys = new WrappedDataKey[count];
            for (int i = 0; i < count; i++)
            {
                string provider = r.Str(EnvelopeFormat.MaxProviderIdLength, "provider id", allowEmpty: false);
                string keyId = r.Str(EnvelopeFormat.MaxKeyIdLength, "key id", allowEmpty: false);
                string keyVersion = r.Str(EnvelopeFormat.MaxKeyVersionLength, "key version id", allowEmpty: true);
                string region = r.Str(EnvelopeFormat.MaxRegionLength, "region", allowEmpty: true);
                string blob = r.Str(EnvelopeFormat.MaxCiphertextBlobLength, "ciphertext blob", allowEmpty: false);
                keys[i] = new WrappedDataKey(provider, keyId, keyVersion, region, blob);
            }
            r.Skip(EnvelopeFormat.CommitmentSize + EnvelopeFormat.TagSize);
            int contentLength = r.Offset;
            if (slot.Span[contentLength..].ContainsAnyExcept((byte)0))
                throw new EnvelopeException(EnvelopeError.MalformedHeader, $"Header slot {index}'s padding is not all zero.");
            return new EnvelopeHeaderSlot(index, slot, null, generation, context, keys, contentLength);
        }
        catch (EnvelopeException e)
        {
            return new EnvelopeHeaderSlot(index, slot, e, 0, null, [], 0);
        }
    }

    /// <summary>Reads the fields of one slot; running past the slot's end is a malformed header (the slot has a fixed size).</summary>
    private ref struct SlotReader(ReadOnlySpan<byte> slot)
    {
        private readonly ReadOnlySpan<byte> _slot = slot;
        public int Offset { get; private set; }

        public ReadOnlySpan<byte> Take(int n)
        {
            if (n > _slot.Length - Offset)
                throw new EnvelopeException(EnvelopeError.MalformedHeader, "A header slot's fields run past the end of the slot.");
            var taken = _slot.Slice(Offset, n);
            Offset += n;
            return taken;
        }

        public void Skip(int n) => Take(n);
        public uint U32() => BinaryPrimitives.ReadUInt32BigEndian(Take(4));
        public int U16() => BinaryPrimitives.ReadUInt16BigEndian(Take(2));

        public string Str(int maxLength, string what, bool allowEmpty)
        {
            int n = U16();
            if (n > maxLength)
                throw new EnvelopeException(EnvelopeError.LimitExceeded, $"A wrapped key's {what} claims {n} bytes; at most {maxLength} are accepted.");
            if (n == 0 && !allowEmpty)
                throw new EnvelopeException(EnvelopeError.MalformedHeader, $"A wrapped key's {what} is empty.");
            var bytes = Take(n);
            try { return StrictUtf8.GetString(bytes); }
            catch (DecoderFallbackException)
            {
                throw new EnvelopeException(EnvelopeError.MalformedHeader, $"A wrapped key's {what} is not valid UTF-8.");
            }
        }
    }

    /// <summary>
    /// Checks one candidate slot: commitment (constant time), then its tag under its own nonce. On success the file key
    /// is in <paramref name="fileKey"/>; on failure it is wiped and the exception says why.
    /// </summary>
    internal void AuthenticateSlot(EnvelopeHeaderSlot slot, DataKey dataKey, Span<byte> fileKey)
    {
        DeriveAndCheckCommitment(dataKey, slot.Commitment, fileKey);
        Span<byte> nonce = stackalloc byte[FrameCipher.NonceSize];
        V2HeaderNonce(slot.HeaderNonceSuffix, nonce);
        var aad = new byte[EnvelopeFormat.PreambleSize + slot.AuthenticatedBytes.Length];
        Preamble.CopyTo(aad);
        slot.AuthenticatedBytes.CopyTo(aad.AsSpan(EnvelopeFormat.PreambleSize));
        using var cipher = FrameCipher.Create(fileKey);
        if (!cipher.TryDecrypt(nonce, ReadOnlySpan<byte>.Empty, slot.Tag, Span<byte>.Empty, aad))
        {
            CryptographicOperations.ZeroMemory(fileKey);
            throw HeaderTampered();
        }
    }

    private void AuthenticateV2(DataKey dataKey, Span<byte> fileKey)
    {
        if (_active is not null)
        {
            AuthenticateSlot(_active, dataKey, fileKey);
            return;
        }
        EnvelopeException? first = null;
        foreach (var candidate in _candidates)
        {
            try
            {
                AuthenticateSlot(candidate, dataKey, fileKey);
                Activate(candidate);
                return;
            }
            catch (EnvelopeException e)
            {
                first ??= e;
            }
        }
        throw first!;
    }

    /// <summary>Makes <paramref name="slot"/> the active slot and classifies the other one.</summary>
    internal void Activate(EnvelopeHeaderSlot slot)
    {
        _active = slot;
        ClassifySlots();
    }

    /// <summary>Records that a candidate's tag failed: a torn or modified slot.</summary>
    internal static void MarkDamaged(EnvelopeHeaderSlot slot, EnvelopeException reason)
    {
        slot.State = EnvelopeSlotState.Damaged;
        slot.Error ??= reason;
    }

    private void ClassifySlots()
    {
        var active = _active!;
        active.State = EnvelopeSlotState.Current;
        active.Error = null;
        foreach (var other in _slots!)
        {
            if (ReferenceEquals(other, active) || !other.IsParsed) continue;
            if (other.Bytes.SequenceEqual(active.Bytes)) other.State = EnvelopeSlotState.Current;
            else if (other.Generation < active.Generation && other.Commitment.SequenceEqual(active.Commitment)) other.State = EnvelopeSlotState.Stale;
            else
            {
                // The same or a newer generation with other bytes, or another commitment: never written by an honest update
                // next to the active slot (or a newer slot that did not authenticate).
                bool untried = other.State == EnvelopeSlotState.Unverified && other.Generation > active.Generation;
                other.State = EnvelopeSlotState.Damaged;
                other.Error ??= new EnvelopeException(EnvelopeError.HeaderTampered, untried
                    ? $"Header slot {other.Index} is newer but none of its wrapped keys could be unwrapped here, so it could not be verified"
                    : $"Header slot {other.Index} does not authenticate.");
            }
        }
    }

    /// <summary>One line for the verbose or warning stream about a v2 header whose slots differ; null when both are current.</summary>
    public string? DescribeSlotProblem()
    {
        if (_active is null) return null;
        var bad = Slots.FirstOrDefault(s => s.State is EnvelopeSlotState.Damaged or EnvelopeSlotState.Stale);
        if (bad is null) return null;
        string what = bad.State == EnvelopeSlotState.Stale
            ? $"holds an older generation ({bad.Generation}): an earlier key update was interrupted"
            : $"is damaged ({bad.Error?.Message.TrimEnd('.') ?? "it does not authenticate"})";
        return $"Header slot {bad.Index} {what}; slot {_active.Index} (generation {_active.Generation}) was used.";
    }
}
