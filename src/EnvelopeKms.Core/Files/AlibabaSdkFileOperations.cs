using EnvelopeKms.AlibabaSdk;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;

namespace EnvelopeKms.Files;

/// <summary>
/// File-to-file reading and writing of Alibaba Cloud Encryption SDK messages with the guarantees of
/// <see cref="EnvelopeFileOperations"/>: the output goes to an owner-only temp file beside the destination, renamed
/// into place only when complete; on any failure the temp file is deleted and the destination left as it was.
/// Decryption writes nothing into the temp file before the header tag and the body tag have verified.
/// </summary>
public static class AlibabaSdkFileOperations
{
    public static async Task<EnvelopeFileResult> EncryptFileAsync(string source, string destination, DataKey dataKey, IReadOnlyList<string> cmkArns,
        EncryptionContext context, AlibabaSdkLayout layout = AlibabaSdkLayout.Asn1, bool overwrite = false, ProgressCounter? progress = null,
        CancellationToken cancellationToken = default)
    {
        (source, destination) = EnvelopeFileOperations.CheckPaths(source, destination, overwrite);
        _ = AlibabaSdkEnvelope.EncryptedDataKeysFor(dataKey, cmkArns); // argument errors before any file is created
        await using var input = EnvelopeFileOperations.OpenSource(source);
        if (input.Length > AlibabaSdkFormat.MaxPlaintextLength) throw AlibabaSdkReader.Errors.TooLarge(input.Length);
        AlibabaSdkHeader? header = null;
        // The plaintext is held whole (and encrypted in place): from the shared budget, so files in flight at once wait.
        long outputLength = await WholeMessageBudget.RunAsync(input.Length, () => EnvelopeFileOperations.WriteFileAtomicallyAsync(source, destination, overwrite, async output =>
        {
            header = await AlibabaSdkEnvelope.EncryptAsync(input, output, dataKey, cmkArns, context, layout, progress, cancellationToken).ConfigureAwait(false);
        }, cancellationToken), cancellationToken).ConfigureAwait(false);
        return new EnvelopeFileResult(source, destination, null, header!.PlaintextLength ?? 0, outputLength, dataKey.KeyId);
    }

    public static async Task<EnvelopeFileResult> DecryptFileAsync(string source, string destination, IDataKeyProvider keyProvider, bool overwrite = false,
        AlibabaSdkDecryptOptions? options = null, ProgressCounter? progress = null, CancellationToken cancellationToken = default)
    {
        options ??= AlibabaSdkDecryptOptions.Default;
        (source, destination) = EnvelopeFileOperations.CheckPaths(source, destination, overwrite);
        await using var input = EnvelopeFileOperations.OpenSource(source);
        // Everything that can fail without writing (header, context, KMS, header tag) happens before the temp file exists.
        var header = await AlibabaSdkEnvelope.ReadHeaderAsync(input, cancellationToken).ConfigureAwait(false);
        AlibabaSdkEnvelope.CheckRequiredContext(header, options.RequiredContext);
        using var dataKey = await AlibabaSdkEnvelope.UnwrapAsync(header, keyProvider, cancellationToken).ConfigureAwait(false);
        AlibabaSdkDecryptResult? result = null;
        long outputLength = await WholeMessageBudget.RunAsync(BodyBytes(input), () => EnvelopeFileOperations.WriteFileAtomicallyAsync(source, destination, overwrite, async output =>
        {
            result = await AlibabaSdkEnvelope.DecryptBodyAsync(header, input, output, dataKey, progress, cancellationToken).ConfigureAwait(false);
        }, cancellationToken), cancellationToken).ConfigureAwait(false);
        return new EnvelopeFileResult(source, destination, null, result!.PlaintextLength, outputLength, result.KeyId, result.UnwrappedFrom);
    }

    /// <summary>Authenticates a whole message without writing plaintext anywhere.</summary>
    public static async Task<AlibabaSdkDecryptResult> VerifyFileAsync(string path, IDataKeyProvider keyProvider, AlibabaSdkDecryptOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        options ??= AlibabaSdkDecryptOptions.Default;
        await using var input = EnvelopeFileOperations.OpenSource(Path.GetFullPath(path));
        var header = await AlibabaSdkEnvelope.ReadHeaderAsync(input, cancellationToken).ConfigureAwait(false);
        AlibabaSdkEnvelope.CheckRequiredContext(header, options.RequiredContext);
        using var dataKey = await AlibabaSdkEnvelope.UnwrapAsync(header, keyProvider, cancellationToken).ConfigureAwait(false);
        return await WholeMessageBudget.RunAsync(BodyBytes(input),
            () => AlibabaSdkEnvelope.DecryptBodyAsync(header, input, Stream.Null, dataKey, null, cancellationToken), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Authenticates a message just written, with the data key still in hand (no KMS call).</summary>
    public static async Task VerifyFileAsync(string path, DataKey dataKey, CancellationToken cancellationToken = default)
    {
        await using var input = EnvelopeFileOperations.OpenSource(Path.GetFullPath(path));
        var header = await AlibabaSdkEnvelope.ReadHeaderAsync(input, cancellationToken).ConfigureAwait(false);
        await WholeMessageBudget.RunAsync(BodyBytes(input),
            () => AlibabaSdkEnvelope.DecryptBodyAsync(header, input, Stream.Null, dataKey, null, cancellationToken), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// What reading the body may allocate: the rest of the file, read whole once the header tag has verified. The
    /// header tag does not cover the body's length, so a genuine header followed by a sparse tail costs this much; the
    /// shared <see cref="WholeMessageBudget"/> keeps files in flight at once from multiplying it.
    /// </summary>
    private static long BodyBytes(FileStream input) => Math.Max(0, input.Length - input.Position);

    /// <summary>Reads only the header and the body's framing: no key, no KMS call.</summary>
    public static async Task<AlibabaSdkHeader> ReadHeaderAsync(string path, CancellationToken cancellationToken = default)
    {
        await using var input = EnvelopeFileOperations.OpenSource(Path.GetFullPath(path));
        return await AlibabaSdkEnvelope.ReadHeaderAsync(input, cancellationToken).ConfigureAwait(false);
    }
}
