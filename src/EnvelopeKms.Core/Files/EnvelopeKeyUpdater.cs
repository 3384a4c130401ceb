using System.Collections.Concurrent;
using System.Security.Cryptography;
using EnvelopeKms.Crypto;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using EnvelopeKms.Cloud;

namespace EnvelopeKms.Files;

/// <summary>Why a key update was refused. Stable: the module maps each to an error id. The file is untouched.</summary>
public enum EnvelopeKeyUpdateError
{
    /// <summary>The change would leave the file with no wrapped key.</summary>
    LastKeyRemoved,
    /// <summary>A key to remove has no entry in the file.</summary>
    KeyNotInFile,
    /// <summary>The change would give the file more wrapped keys than allowed.</summary>
    TooManyKeys,
    /// <summary>The file is not an EKMS v1 or v2 file (for instance the documentation sample's legacy format).</summary>
    UnsupportedFormat,
    /// <summary>The header's generation counter cannot grow any further.</summary>
    GenerationExhausted,
}

/// <summary>A key update that was refused before anything was written.</summary>
public sealed class EnvelopeKeyUpdateException(EnvelopeKeyUpdateError error, string message) : Exception(message)
{
    public EnvelopeKeyUpdateError Error { get; } = error;
}

/// <summary>
/// What to change in each file's key list: keys to add and keys to remove (both may be given), or the complete new
/// set (<see cref="Replace"/>). Keys are ids, ARNs or aliases.
/// </summary>
public sealed record EnvelopeKeyChange
{
    public IReadOnlyList<string> Add { get; init; } = [];
    public IReadOnlyList<string> Remove { get; init; } = [];

    /// <summary>The complete new set: entries for keys already present are kept, the others are wrapped anew.</summary>
    public IReadOnlyList<string>? Replace { get; init; }
}

/// <summary>One file's update.</summary>
public sealed record EnvelopeKeyUpdateResult(
    string Path,
    IReadOnlyList<WrappedDataKey> OldKeys,
    IReadOnlyList<WrappedDataKey> NewKeys,
    byte OldVersion,
    uint Generation,
    int SlotSize,
    bool Changed,
    bool Rewritten,
    string? RepairedSlotProblem);

/// <summary>
/// Re-wraps files without re-encrypting them (docs/format.md §12.5): the data key is unwrapped once (one KMS
/// Decrypt per distinct wrapped key, through the caller's caching provider), wrapped under each added key (one KMS
/// Encrypt per distinct data key and added key, cached here by the entry that unwrapped it), and the new key list
/// is written into the header's two slots one after the other, each flushed to disk, so that a crash at any
/// moment leaves a file that decrypts to the old key list or to the new one. The body is never read for this, let
/// alone decrypted, so the cost does not depend on the file's size; only a v1 file, or a key list that outgrows
/// the slots, is rewritten whole (temp file, copied body bytes, rename). One instance serves a whole pipeline;
/// it holds no plaintext key (the caching provider does, and wipes them when disposed).
/// </summary>
public sealed class EnvelopeKeyUpdater
{
    private readonly IDataKeyProvider _unwrapper;
    private readonly IDataKeyWrapper _wrapper;
    private readonly EnvelopeKeyChange _change;
    private readonly EnvelopeReadLimits _limits;
    private readonly ConcurrentDictionary<string, Lazy<Task<WrappedDataKey>>> _wrapped = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Lazy<Task<IReadOnlyList<KmsKeyReference>>>> _resolved = new(StringComparer.Ordinal);

    public EnvelopeKeyUpdater(IDataKeyProvider unwrapper, IDataKeyWrapper wrapper, EnvelopeKeyChange change, EnvelopeReadLimits? limits = null)
    {
        _unwrapper = unwrapper ?? throw new ArgumentNullException(nameof(unwrapper));
        _wrapper = wrapper ?? throw new ArgumentNullException(nameof(wrapper));
        _change = change ?? throw new ArgumentNullException(nameof(change));
        _limits = limits ?? EnvelopeReadLimits.Default;
        if (change.Replace is { Count: 0 }) throw new ArgumentException("The replacement key set is empty: a file needs at least one key.", nameof(change));
        if (change.Replace is not null && (change.Add.Count > 0 || change.Remove.Count > 0))
            throw new ArgumentException("A replacement key set cannot be combined with keys to add or remove.", nameof(change));
        if (change.Replace is null && change.Add.Count == 0 && change.Remove.Count == 0)
            throw new ArgumentException("Nothing to change: give keys to add, to remove, or the new set.", nameof(change));
        foreach (var reference in change.Add.Concat(change.Remove).Concat(change.Replace ?? [])) KmsKeyReference.Parse(reference);
    }

    /// <summary>Pairs each file's encryption context must have (checked like a decryption's, before and after authentication).</summary>
    public EncryptionContext RequiredContext { get; init; } = EncryptionContext.Empty;

    /// <summary>Most wrapped keys an updated file may have: the reader limit (8 by default, 16 at most), so that readers with the same limit can still open it.</summary>
    public int MaxWrappedKeys => Math.Clamp(_limits.MaxWrappedKeys, 1, EnvelopeFormat.MaxWrappedKeysHardLimit);

    /// <summary>Test hook: called after each slot write has been flushed (0 = first write, 1 = second); throwing simulates a crash there.</summary>
    internal Action<int>? AfterSlotWrite { get; init; }

    /// <summary>Updates one file. Everything that can fail without writing (header, KMS, the new list) happens before the first write.</summary>
    public async Task<EnvelopeKeyUpdateResult> UpdateFileAsync(string path, CancellationToken cancellationToken = default)
    {
        path = ResolveFinalPath(Path.GetFullPath(path));
        if (await FileFormats.DetectAsync(path, cancellationToken).ConfigureAwait(false) == FileFormats.Legacy)
        {
            throw new EnvelopeKeyUpdateException(EnvelopeKeyUpdateError.UnsupportedFormat,
                $"'{path}' is in the legacy (documentation sample) format, which has one key and no header to update. Decrypt it and encrypt it again in the EKMS format.");
        }
        await using var file = OpenForUpdate(path);
        var header = await EnvelopeHeader.ReadAsync(file, _limits with { MaxWrappedKeys = EnvelopeFormat.MaxWrappedKeysHardLimit }, cancellationToken).ConfigureAwait(false);
        Envelope.CheckRequiredContext(header, RequiredContext);
        using var dataKey = await Envelope.UnwrapAsync(header, _unwrapper, cancellationToken).ConfigureAwait(false);
        Envelope.CheckRequiredContext(header, RequiredContext);
        string? repaired = header.DescribeSlotProblem();
        var oldKeys = header.WrappedKeys;
        var newKeys = await NewKeyListAsync(header, dataKey, cancellationToken).ConfigureAwait(false);
        bool bothSlotsCurrent = header.Version == EnvelopeFormat.Version2 && header.DamagedSlots.Count == 0;
        if (newKeys.SequenceEqual(oldKeys) && (header.Version == EnvelopeFormat.Version1 || bothSlotsCurrent))
            return new EnvelopeKeyUpdateResult(path, oldKeys, newKeys, header.Version, header.Generation, header.SlotSize, Changed: false, Rewritten: false, null);

        var context = header.EncryptionContext;
        uint generation = NextGeneration(header);
        byte[] fileKey = SecretBuffers.Track(GC.AllocateArray<byte>(FrameCipher.KeySize, pinned: true));
        var commitment = new byte[EnvelopeFormat.CommitmentSize];
        try
        {
            KeySchedule.Derive(dataKey.Plaintext, header.MessageId, header.SuiteId, fileKey, commitment);
            int contentLength = EnvelopeHeader.SlotContentLength(context, newKeys);
            if (header.Version == EnvelopeFormat.Version2 && contentLength <= header.SlotSize)
            {
                var slot = EnvelopeHeader.CreateSlot(header.Preamble, header.SlotSize, generation, context, newKeys, commitment, fileKey);
                WriteSlotsInPlace(file, header, slot);
                return new EnvelopeKeyUpdateResult(path, oldKeys, newKeys, header.Version, generation, header.SlotSize, Changed: true, Rewritten: false, repaired);
            }
            int slotSize = EnvelopeHeader.SlotSizeFor(contentLength);
            var preamble = EnvelopeHeader.CreatePreamble(header.FrameLength, header.MessageId, slotSize);
            var newSlot = EnvelopeHeader.CreateSlot(preamble, slotSize, generation, context, newKeys, commitment, fileKey);
            await RewriteAsync(path, file, header, preamble, newSlot, cancellationToken).ConfigureAwait(false);
            return new EnvelopeKeyUpdateResult(path, oldKeys, newKeys, header.Version, generation, slotSize, Changed: true, Rewritten: true, repaired);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(fileKey);
        }
    }

    /// <summary>
    /// The generation of the new slot content (§12.5 step 3): above the raw generation field of both slots, parsed
    /// or not. A v1 file converted to v2 starts at 1.
    /// </summary>
    private static uint NextGeneration(EnvelopeHeader header)
    {
        if (header.Version == EnvelopeFormat.Version1) return 1;
        uint max = header.Slots.Max(s => s.RawGeneration);
        if (max == uint.MaxValue)
            throw new EnvelopeKeyUpdateException(EnvelopeKeyUpdateError.GenerationExhausted,
                "The header's generation counter is at its maximum; the key list cannot be updated in place. Decrypt and encrypt the file again.");
        return max + 1;
    }

    /// <summary>Opens the file for reading and writing, exclusively: a second updater (or a reader of this module) waits for no one and fails clearly.</summary>
    private static FileStream OpenForUpdate(string path)
    {
        try
        {
            return new FileStream(path, new FileStreamOptions
            {
                Mode = FileMode.Open,
                Access = FileAccess.ReadWrite,
                Share = FileShare.None,
                Options = FileOptions.Asynchronous,
                BufferSize = 0,
            });
        }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException)
        {
            throw new IOException($"'{path}' is in use by another process (an update or a decryption); try again when it is done. {e.Message}", e);
        }
    }

    /// <summary>A symbolic link is followed to its file, so an update changes the file and leaves the link a link.</summary>
    private static string ResolveFinalPath(string path)
    {
        try
        {
            return new FileInfo(path).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? path;
        }
        catch (IOException)
        {
            return path;
        }
    }

    /// <summary>
    /// §12.5 step 4: the new slot first into the slot that is not current (the damaged or stale one; slot 1 when both
    /// are current), flushed; then into the other, flushed.
    /// </summary>
    private void WriteSlotsInPlace(FileStream file, EnvelopeHeader header, byte[] slot)
    {
        var active = header.ActiveSlot!;
        var other = header.Slots[1 - active.Index];
        int first = other.State == EnvelopeSlotState.Current ? 1 : other.Index;
        var handle = file.SafeFileHandle;
        foreach (var (index, step) in new[] { (first, 0), (1 - first, 1) })
        {
            RandomAccess.Write(handle, slot, EnvelopeFormat.PreambleSize + (long)index * header.SlotSize);
            RandomAccess.FlushToDisk(handle);
            AfterSlotWrite?.Invoke(step);
        }
    }

    /// <summary>§12.5 step 5: a new v2 file with a larger slot size; the body bytes are copied as they are.</summary>
    private static async Task RewriteAsync(string path, FileStream original, EnvelopeHeader header, byte[] preamble, byte[] slot, CancellationToken cancellationToken)
    {
        await EnvelopeFileOperations.ReplaceFileAtomicallyAsync(path, async output =>
        {
            await output.WriteAsync(preamble, cancellationToken).ConfigureAwait(false);
            await output.WriteAsync(slot, cancellationToken).ConfigureAwait(false);
            await output.WriteAsync(slot, cancellationToken).ConfigureAwait(false);
            original.Position = header.Length;
            await original.CopyToAsync(output, 1 << 20, cancellationToken).ConfigureAwait(false);
            // Windows cannot rename over a file that is open; elsewhere the lock is kept until the rename is done.
            if (OperatingSystem.IsWindows()) await original.DisposeAsync().ConfigureAwait(false);
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The new key list (§12.5 step 2), or a refusal. New entries cost one Encrypt per distinct data key and key.</summary>
    private async Task<IReadOnlyList<WrappedDataKey>> NewKeyListAsync(EnvelopeHeader header, DataKey dataKey, CancellationToken cancellationToken)
    {
        var current = header.WrappedKeys;
        var result = new List<WrappedDataKey>();
        if (_change.Replace is { } set)
        {
            foreach (var reference in set)
            {
                var names = await ResolveAsync(reference, cancellationToken).ConfigureAwait(false);
                var kept = current.FirstOrDefault(e => Names(e, names));
                if (kept is not null)
                {
                    if (!result.Contains(kept)) result.Add(kept);
                }
                else if (!result.Any(e => Names(e, names)))
                {
                    result.Add(await WrapAsync(reference, header, dataKey, cancellationToken).ConfigureAwait(false));
                }
            }
        }
        else
        {
            result.AddRange(current);
            foreach (var reference in _change.Remove)
            {
                var names = await ResolveAsync(reference, cancellationToken).ConfigureAwait(false);
                if (result.RemoveAll(e => Names(e, names)) == 0)
                {
                    throw new EnvelopeKeyUpdateException(EnvelopeKeyUpdateError.KeyNotInFile,
                        $"The file has no wrapped key for '{reference}' (its keys: {string.Join(", ", current.Select(k => k.KeyId))}).");
                }
            }
            if (result.Count == 0 && _change.Add.Count == 0)
            {
                throw new EnvelopeKeyUpdateException(EnvelopeKeyUpdateError.LastKeyRemoved,
                    "Removing these keys would leave the file with no wrapped key, and nobody could decrypt it. Add another key in the same command (-AddKeyId), or delete the file.");
            }
            foreach (var reference in _change.Add)
            {
                var names = await ResolveAsync(reference, cancellationToken).ConfigureAwait(false);
                if (result.Any(e => Names(e, names))) continue; // already there: adding is idempotent
                result.Add(await WrapAsync(reference, header, dataKey, cancellationToken).ConfigureAwait(false));
            }
        }
        // A file that already has more keys than the limit (read with a raised limit) may still shrink.
        if (result.Count > EnvelopeFormat.MaxWrappedKeysHardLimit || (result.Count > MaxWrappedKeys && result.Count > current.Count))
        {
            throw new EnvelopeKeyUpdateException(EnvelopeKeyUpdateError.TooManyKeys,
                $"The file would have {result.Count} wrapped keys; at most {MaxWrappedKeys} are allowed (readers refuse more by default).");
        }
        return result;
    }

    private static bool Names(WrappedDataKey entry, IReadOnlyList<KmsKeyReference> names)
    {
        KmsKeyReference key;
        try { key = KmsKeyReference.Parse(entry.KeyId); }
        catch (ArgumentException) { return false; }
        return names.Any(n => n.Matches(key));
    }

    private Task<IReadOnlyList<KmsKeyReference>> ResolveAsync(string reference, CancellationToken cancellationToken)
    {
        var lazy = _resolved.GetOrAdd(reference, r => new Lazy<Task<IReadOnlyList<KmsKeyReference>>>(async () =>
        {
            var names = await _wrapper.ResolveKeyReferenceAsync(r, CancellationToken.None).ConfigureAwait(false);
            return names.Select(KmsKeyReference.Parse).Append(KmsKeyReference.Parse(r)).ToList();
        }));
        return Await(reference, lazy, _resolved, cancellationToken);
    }

    /// <summary>
    /// The entry for <paramref name="reference"/>, shared by every file whose data key came from the same wrapped
    /// entry (the same blob, provider and context: hence the same data key).
    /// </summary>
    private Task<WrappedDataKey> WrapAsync(string reference, EnvelopeHeader header, DataKey dataKey, CancellationToken cancellationToken)
    {
        var from = dataKey.UnwrappedFrom;
        var context = header.EncryptionContext;
        if (from is null) return _wrapper.WrapDataKeyAsync(reference, dataKey, context, cancellationToken);
        string cacheKey = string.Join("\n", from.ProviderId, from.CiphertextBlob, context.ToKmsJson() ?? "", reference);
        // The cached task must not depend on this file's data key object, which is disposed when the file is done:
        // it runs on a copy it owns and wipes.
        var copy = new DataKey(dataKey.Plaintext, dataKey.WrappedKeys, dataKey.KeyId);
        bool used = false;
        var lazy = _wrapped.GetOrAdd(cacheKey, _ => new Lazy<Task<WrappedDataKey>>(() =>
        {
            used = true;
            return WrapOwnedAsync(reference, copy, context);
        }));
        _ = lazy.Value;
        if (!used) copy.Dispose();
        return Await(cacheKey, lazy, _wrapped, cancellationToken);
    }

    private async Task<WrappedDataKey> WrapOwnedAsync(string reference, DataKey copy, EncryptionContext context)
    {
        using (copy) return await _wrapper.WrapDataKeyAsync(reference, copy, context, CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>Awaits a shared call; a failed one is forgotten, so the next file tries again.</summary>
    private static async Task<T> Await<T>(string key, Lazy<Task<T>> lazy, ConcurrentDictionary<string, Lazy<Task<T>>> cache, CancellationToken cancellationToken)
    {
        try
        {
            return await lazy.Value.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch when (!cancellationToken.IsCancellationRequested)
        {
            cache.TryRemove(new KeyValuePair<string, Lazy<Task<T>>>(key, lazy));
            throw;
        }
    }
}
