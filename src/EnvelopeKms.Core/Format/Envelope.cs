using System.Security.Cryptography;
using EnvelopeKms.Crypto;
using EnvelopeKms.Keys;

namespace EnvelopeKms.Format;

/// <summary>Options for writing an EKMS file.</summary>
public sealed record EnvelopeEncryptOptions
{
    public static EnvelopeEncryptOptions Default { get; } = new();

    /// <summary>Plaintext bytes per frame (docs/format.md §6 explains the default).</summary>
    public int FrameLength { get; init; } = EnvelopeFormat.DefaultFrameLength;

    /// <summary>Threads that run AES within one file.</summary>
    public int Parallelism { get; init; } = Environment.ProcessorCount;

    /// <summary>The format version written: 2 (the default) or 1 (kept for tests and vectors; v1 headers cannot be updated in place).</summary>
    public byte FormatVersion { get; init; } = EnvelopeFormat.DefaultVersion;

    /// <summary>Known-answer tests only: a fixed v2 header nonce instead of a random one.</summary>
    internal byte[]? FixedHeaderNonce { get; init; }
}

/// <summary>Options for reading an EKMS file.</summary>
public sealed record EnvelopeDecryptOptions
{
    public static EnvelopeDecryptOptions Default { get; } = new();

    public EnvelopeReadLimits Limits { get; init; } = EnvelopeReadLimits.Default;

    /// <summary>Pairs that must be present, with these values, in the file's encryption context.</summary>
    public EncryptionContext RequiredContext { get; init; } = EncryptionContext.Empty;

    public int Parallelism { get; init; } = Environment.ProcessorCount;
}

/// <summary>
/// What a decryption found out about the file. For v2, <see cref="EnvelopeHeader.ActiveSlot"/> is the slot used and
/// <see cref="SlotProblem"/> says when the other slot was damaged or stale.
/// </summary>
public sealed record EnvelopeDecryptResult(EnvelopeHeader Header, string? KeyId, WrappedDataKey? UnwrappedFrom, long PlaintextLength)
{
    public string? SlotProblem => Header.DescribeSlotProblem();
}

/// <summary>
/// Stream-to-stream encryption and decryption in the EKMS formats (v2 written by default, v1 and v2 read). Streams are read and written sequentially,
/// in constant memory. The decrypting stream API writes only authenticated frames, but a later frame may still
/// fail: the file operations (<c>EnvelopeFileOperations</c>, in Files) give all-or-nothing output files.
/// </summary>
public static class Envelope
{
    /// <summary>Encrypts <paramref name="input"/> to <paramref name="output"/> under a data key the caller owns (and wipes).</summary>
    public static async Task<EnvelopeHeader> EncryptAsync(Stream input, Stream output, DataKey dataKey, EncryptionContext context,
        EnvelopeEncryptOptions? options = null, ProgressCounter? progress = null, CancellationToken cancellationToken = default)
    {
        var messageId = new byte[EnvelopeFormat.MessageIdSize];
        RandomNumberGenerator.Fill(messageId);
        return await EncryptAsync(input, output, dataKey, context, messageId, options, progress, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Encrypts with a given message id: only for known-answer tests, since a message id must never repeat.</summary>
    internal static async Task<EnvelopeHeader> EncryptAsync(Stream input, Stream output, DataKey dataKey, EncryptionContext context, byte[] messageId,
        EnvelopeEncryptOptions? options, ProgressCounter? progress, CancellationToken cancellationToken)
    {
        options ??= EnvelopeEncryptOptions.Default;
        byte[] fileKey = SecretBuffers.Track(GC.AllocateArray<byte>(FrameCipher.KeySize, pinned: true));
        try
        {
            var header = EnvelopeHeader.Create(dataKey, context, options.FrameLength, messageId, fileKey, options.FormatVersion, options.FixedHeaderNonce);
            await output.WriteAsync(header.Bytes.ToArray(), cancellationToken).ConfigureAwait(false);
            long? length = input.CanSeek ? input.Length - input.Position : null;
            using var processor = new FrameProcessor(encrypt: true, fileKey, header.MessageId, options.FrameLength, length, options.Parallelism);
            await processor.RunAsync(input, output, progress, cancellationToken).ConfigureAwait(false);
            return header;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(fileKey);
        }
    }

    /// <summary>
    /// Reads the header, checks the required context, asks <paramref name="keyProvider"/> to unwrap the data key
    /// (with the header's context), verifies commitment and header tag, then decrypts the body.
    /// </summary>
    public static async Task<EnvelopeDecryptResult> DecryptAsync(Stream input, Stream output, IDataKeyProvider keyProvider,
        EnvelopeDecryptOptions? options = null, ProgressCounter? progress = null, CancellationToken cancellationToken = default)
    {
        options ??= EnvelopeDecryptOptions.Default;
        var (header, dataKey) = await ReadHeaderAndUnwrapAsync(input, keyProvider, options, cancellationToken).ConfigureAwait(false);
        using (dataKey)
            return await DecryptBodyAsync(header, input, output, dataKey, options, progress, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Reads the header, checks the required context and unwraps the data key: everything that can fail before any
    /// body byte is read or any output exists. The caller owns (and disposes) the key.
    /// </summary>
    internal static async Task<(EnvelopeHeader Header, DataKey DataKey)> ReadHeaderAndUnwrapAsync(Stream input, IDataKeyProvider keyProvider,
        EnvelopeDecryptOptions options, CancellationToken cancellationToken)
    {
        var header = await EnvelopeHeader.ReadAsync(input, options.Limits, cancellationToken).ConfigureAwait(false);
        CheckRequiredContext(header, options.RequiredContext);
        return (header, await UnwrapAsync(header, keyProvider, cancellationToken).ConfigureAwait(false));
    }

    /// <summary>
    /// Asks the key provider for the data key (with the header's context) and checks it against the key commitment
    /// and the header tag. If an entry unwraps to a key that does not commit (a substituted entry), the remaining
    /// entries are tried, so a hostile entry cannot stop an honest one from decrypting the file. For v2 the slots
    /// are tried in descending generation (docs/format.md §12.3): the first that authenticates wins, so a slot
    /// torn by a crash falls back to the other one.
    /// </summary>
    public static async Task<DataKey> UnwrapAsync(EnvelopeHeader header, IDataKeyProvider keyProvider, CancellationToken cancellationToken = default)
    {
        using var budget = UnwrapBudget.For(header);
        if (header.Version != EnvelopeFormat.Version2)
            return (await UnwrapEntriesAsync(header.WrappedKeys, header.EncryptionContext, keyProvider, (key, fileKey) => header.Authenticate(key, fileKey), budget, cancellationToken, tagFailureKeepsKey: false).ConfigureAwait(false)).Key;

        Exception? first = null;
        DataKey? held = null; // a key that passed a newer slot's commitment but not its tag
        try
        {
            foreach (var slot in header.Candidates)
            {
                byte[] fileKey = SecretBuffers.Track(GC.AllocateArray<byte>(FrameCipher.KeySize, pinned: true));
                try
                {
                    if (held is not null && held.UnwrappedFrom is { } used && slot.WrappedKeys.Contains(used))
                    {
                        // Same entry, so the same data key: no second KMS call for the older slot.
                        header.AuthenticateSlot(slot, held, fileKey);
                        header.Activate(slot);
                        var result = held;
                        held = null;
                        return result;
                    }
                    var key = await UnwrapEntriesAsync(slot.WrappedKeys, slot.EncryptionContext!, keyProvider,
                        (k, fk) => header.AuthenticateSlot(slot, k, fk), budget, cancellationToken, tagFailureKeepsKey: true).ConfigureAwait(false);
                    if (key.Tampered is { } tampered)
                    {
                        EnvelopeHeader.MarkDamaged(slot, tampered);
                        first ??= tampered;
                        held?.Dispose();
                        held = key.Key;
                        continue;
                    }
                    header.Activate(slot);
                    return key.Key;
                }
                catch (EnvelopeException e) when (e.Error == EnvelopeError.HeaderTampered)
                {
                    EnvelopeHeader.MarkDamaged(slot, e);
                    first ??= e;
                }
                catch (Exception e) when (e is EnvelopeException || e is KeyProviderException { Error: not KeyProviderError.Authentication })
                {
                    // This slot's entries do not unwrap to the file's key for this caller; an older slot may still.
                    // That includes entries that cannot be reached (a region no endpoint is known for, one that is
                    // down): the other slot's differ (the budget never hands an entry over twice), so they may work.
                    // Only credentials that KMS refuses fail every slot alike.
                    first ??= e;
                }
                finally
                {
                    CryptographicOperations.ZeroMemory(fileKey);
                }
            }
            throw first ?? new EnvelopeException(EnvelopeError.MalformedHeader, "The header has no usable slot.");
        }
        finally
        {
            held?.Dispose();
        }
    }

    private delegate void AuthenticateAction(DataKey key, Span<byte> fileKey);

    private readonly record struct Unwrapped(DataKey Key, EnvelopeException? Tampered);

    /// <summary>
    /// Unwraps the first entry that yields a committing key and authenticates with it. With
    /// <paramref name="tagFailureKeepsKey"/>, a committing key whose tag fails is returned with the failure
    /// (the caller may try it on another slot) instead of being wiped. Only entries the <paramref name="budget"/>
    /// still allows are handed to the provider; after a substituted key, the search goes on after the entry that
    /// gave it (the ones before it have already failed).
    /// </summary>
    private static async Task<Unwrapped> UnwrapEntriesAsync(IReadOnlyList<WrappedDataKey> entries, EncryptionContext context, IDataKeyProvider keyProvider,
        AuthenticateAction authenticate, UnwrapBudget budget, CancellationToken cancellationToken, bool tagFailureKeepsKey)
    {
        byte[] fileKey = SecretBuffers.Track(GC.AllocateArray<byte>(FrameCipher.KeySize, pinned: true));
        try
        {
            foreach (var (entry, kept) in budget.KeptFor(entries))
            {
                try
                {
                    authenticate(kept, fileKey);
                    budget.Release(entry);
                    return new Unwrapped(kept, null);
                }
                catch (EnvelopeException e) when (e.Error == EnvelopeError.KeyCommitmentMismatch)
                {
                }
                catch (EnvelopeException e) when (tagFailureKeepsKey && e.Error == EnvelopeError.HeaderTampered)
                {
                    budget.Release(entry);
                    return new Unwrapped(kept, e);
                }
            }
            while (true)
            {
                var remaining = budget.Untried(entries);
                if (remaining.Count == 0)
                {
                    throw new KeyProviderException(KeyProviderError.NoMatchingKey,
                        $"No wrapped data key is left to try: each entry is tried once per file, and at most {budget.Limit} in all.");
                }
                DataKey dataKey;
                try
                {
                    dataKey = await keyProvider.DecryptDataKeyAsync(remaining, context, cancellationToken).ConfigureAwait(false);
                }
                catch
                {
                    budget.Spend(remaining, null);
                    throw;
                }
                budget.Spend(remaining, dataKey.UnwrappedFrom);
                try
                {
                    authenticate(dataKey, fileKey);
                    return new Unwrapped(dataKey, null);
                }
                catch (EnvelopeException e) when (e.Error == EnvelopeError.KeyCommitmentMismatch && dataKey.UnwrappedFrom is { } used && budget.Untried(entries).Count > 0)
                {
                    budget.Keep(used, dataKey);
                }
                catch (EnvelopeException e) when (e.Error == EnvelopeError.KeyCommitmentMismatch && dataKey.UnwrappedFrom is { } used)
                {
                    budget.Keep(used, dataKey); // the other slot may carry this entry with an intact commitment
                    throw;
                }
                catch (EnvelopeException e) when (tagFailureKeepsKey && e.Error == EnvelopeError.HeaderTampered)
                {
                    return new Unwrapped(dataKey, e);
                }
                catch
                {
                    dataKey.Dispose();
                    throw;
                }
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(fileKey);
        }
    }

    /// <summary>Throws <see cref="EnvelopeError.ContextMismatch"/> unless every required pair is in the header.</summary>
    /// <remarks>
    /// For a v2 header not yet authenticated, it is enough that one candidate slot has the pairs (the check is
    /// repeated on the active slot once it is known, in <see cref="DecryptBodyAsync"/>).
    /// </remarks>
    public static void CheckRequiredContext(EnvelopeHeader header, EncryptionContext required)
    {
        if (header.Version == EnvelopeFormat.Version2 && header.ActiveSlot is null
            && header.Candidates.Any(c => c.EncryptionContext!.Contains(required, out _))) return;
        if (!header.EncryptionContext.Contains(required, out var missing))
        {
            throw new EnvelopeException(EnvelopeError.ContextMismatch,
                header.EncryptionContext.ContainsKey(missing!)
                    ? $"The file's encryption context has a different value for '{missing}' than required."
                    : $"The file's encryption context has no '{missing}' key, which is required.");
        }
    }

    /// <summary>Decrypts the body after <see cref="EnvelopeHeader.ReadAsync"/> with an already unwrapped data key.</summary>
    public static async Task<EnvelopeDecryptResult> DecryptBodyAsync(EnvelopeHeader header, Stream input, Stream output, DataKey dataKey,
        EnvelopeDecryptOptions? options = null, ProgressCounter? progress = null, CancellationToken cancellationToken = default)
    {
        options ??= EnvelopeDecryptOptions.Default;
        byte[] fileKey = SecretBuffers.Track(GC.AllocateArray<byte>(FrameCipher.KeySize, pinned: true));
        try
        {
            header.Authenticate(dataKey, fileKey);
            CheckRequiredContext(header, options.RequiredContext);
            long? length = input.CanSeek ? input.Length - input.Position : null;
            using var processor = new FrameProcessor(encrypt: false, fileKey, header.MessageId, header.FrameLength, length, options.Parallelism);
            long plaintext = await processor.RunAsync(input, output, progress, cancellationToken).ConfigureAwait(false);
            return new EnvelopeDecryptResult(header, dataKey.KeyId, dataKey.UnwrappedFrom, plaintext);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(fileKey);
        }
    }
}
