using System.Security.Cryptography;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using EnvelopeKms.Legacy;

namespace EnvelopeKms.Files;

/// <summary>The formats a file can be recognised as, by content.</summary>
public enum EnvelopeFileFormat
{
    Unknown,
    /// <summary>EKMS, version 1 or 2 (docs/format.md).</summary>
    Ekms,
    /// <summary>The KMS documentation sample's four base64 lines with AES-EAX.</summary>
    Legacy,
    /// <summary>An Alibaba Cloud Encryption SDK message in its ASN.1 (DER) layout (docs/alibaba-sdk-format.md).</summary>
    AlibabaSdk,
    /// <summary>An Alibaba Cloud Encryption SDK message in the Java SDK's stream layout.</summary>
    AlibabaSdkStream,
}

/// <summary>Recognises file formats by their first bytes, and reads and writes the legacy format atomically.</summary>
public static class LegacyFileOperations
{
    /// <summary>Recognises a file by content (not by name).</summary>
    public static async Task<EnvelopeFileFormat> DetectFormatAsync(string path, CancellationToken cancellationToken = default)
    {
        await using var input = EnvelopeFileOperations.OpenSource(Path.GetFullPath(path));
        var prefix = new byte[64];
        int n = await input.ReadAtLeastAsync(prefix, prefix.Length, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
        return Detect(prefix.AsSpan(0, n));
    }

    /// <summary>
    /// Recognises a file by content, synchronously, for a quick check on the pipeline thread: a file that cannot be
    /// opened or read is <see cref="EnvelopeFileFormat.Unknown"/> (the real operation reports the real error).
    /// </summary>
    public static EnvelopeFileFormat DetectFormatOrUnknown(string path)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1);
            Span<byte> prefix = stackalloc byte[64];
            int n = stream.ReadAtLeast(prefix, prefix.Length, throwOnEndOfStream: false);
            return Detect(prefix[..n]);
        }
        catch (IOException) { return EnvelopeFileFormat.Unknown; }
        catch (UnauthorizedAccessException) { return EnvelopeFileFormat.Unknown; }
    }

    public static EnvelopeFileFormat Detect(ReadOnlySpan<byte> prefix)
    {
        if (prefix.StartsWith(EnvelopeFormat.Magic)) return EnvelopeFileFormat.Ekms;
        // A base64-encoded EKMS file also looks like a base64 line; the EKMS reader explains that case.
        if (prefix.StartsWith("iUVLTQ0K"u8)) return EnvelopeFileFormat.Unknown;
        switch (AlibabaSdk.AlibabaSdkFormat.Detect(prefix))
        {
            case AlibabaSdk.AlibabaSdkLayout.Asn1: return EnvelopeFileFormat.AlibabaSdk;
            case AlibabaSdk.AlibabaSdkLayout.Stream: return EnvelopeFileFormat.AlibabaSdkStream;
        }
        return LegacyEnvelope.LooksLikeLegacy(prefix) ? EnvelopeFileFormat.Legacy : EnvelopeFileFormat.Unknown;
    }

    public static async Task<EnvelopeFileResult> DecryptFileAsync(string source, string destination, IDataKeyProvider keyProvider,
        bool overwrite = false, CancellationToken cancellationToken = default)
    {
        source = Path.GetFullPath(source);
        return await WholeMessageBudget.RunAsync(DecryptBytes(source), () => DecryptFileCoreAsync(source, destination, keyProvider, overwrite, cancellationToken),
            cancellationToken).ConfigureAwait(false);
    }

    private static async Task<EnvelopeFileResult> DecryptFileCoreAsync(string source, string destination, IDataKeyProvider keyProvider,
        bool overwrite, CancellationToken cancellationToken)
    {
        var envelope = await ReadAsync(source, cancellationToken).ConfigureAwait(false);
        using var dataKey = await keyProvider.DecryptDataKeyAsync([envelope.WrappedKey], EncryptionContext.Empty, cancellationToken).ConfigureAwait(false);
        var plaintext = envelope.Decrypt(dataKey);
        try
        {
            long length = await EnvelopeFileOperations.WriteFileAtomicallyAsync(source, destination, overwrite,
                output => output.WriteAsync(plaintext, cancellationToken).AsTask(), cancellationToken).ConfigureAwait(false);
            return new EnvelopeFileResult(source, Path.GetFullPath(destination), null, length, length, dataKey.KeyId, dataKey.UnwrappedFrom);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plaintext);
        }
    }

    /// <summary>
    /// Reads and parses a legacy file, checking each line's shape as it is read (<see cref="LegacyEnvelope.ReadAsync"/>):
    /// a file over the size cap is refused before it is read, and one that only starts like a legacy file after a
    /// few bytes.
    /// </summary>
    public static async Task<LegacyEnvelope> ReadAsync(string path, CancellationToken cancellationToken = default)
    {
        await using var input = EnvelopeFileOperations.OpenSource(Path.GetFullPath(path));
        return await LegacyEnvelope.ReadAsync(input, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Reading and decrypting a legacy file holds its decoded ciphertext (in a buffer that may have doubled) and its
    /// plaintext: at most twice the file, reserved from the shared <see cref="WholeMessageBudget"/> so that files in
    /// flight at once wait for each other instead of multiplying it.
    /// </summary>
    private static long DecryptBytes(string path) => 2 * Math.Min(new FileInfo(path).Length, LegacyEnvelope.MaxFileSize);

    /// <summary>Authenticates a legacy file without writing plaintext anywhere; returns the data key's KMS key id and entry.</summary>
    public static Task<(string? KeyId, WrappedDataKey? UnwrappedFrom)> VerifyFileAsync(string path, IDataKeyProvider keyProvider, CancellationToken cancellationToken = default)
        => WholeMessageBudget.RunAsync(DecryptBytes(path), async () =>
        {
            var envelope = await ReadAsync(path, cancellationToken).ConfigureAwait(false);
            using var dataKey = await keyProvider.DecryptDataKeyAsync([envelope.WrappedKey], EncryptionContext.Empty, cancellationToken).ConfigureAwait(false);
            CryptographicOperations.ZeroMemory(envelope.Decrypt(dataKey));
            return (dataKey.KeyId, dataKey.UnwrappedFrom);
        }, cancellationToken);

    /// <summary>Authenticates a legacy file just written, with the data key still in hand (no KMS call).</summary>
    public static Task VerifyFileAsync(string path, DataKey dataKey, CancellationToken cancellationToken = default)
        => WholeMessageBudget.RunAsync(DecryptBytes(path), async () =>
        {
            var envelope = await ReadAsync(path, cancellationToken).ConfigureAwait(false);
            CryptographicOperations.ZeroMemory(envelope.Decrypt(dataKey));
        }, cancellationToken);

    public static async Task<EnvelopeFileResult> EncryptFileAsync(string source, string destination, DataKey dataKey,
        bool overwrite = false, CancellationToken cancellationToken = default)
    {
        source = Path.GetFullPath(source);
        // The plaintext, its ciphertext, the base64 text as a string and its bytes: about six times the file, shared.
        return await WholeMessageBudget.RunAsync(6 * Math.Min(new FileInfo(source).Length, LegacyEnvelope.MaxFileSize),
            () => EncryptFileCoreAsync(source, destination, dataKey, overwrite, cancellationToken), cancellationToken).ConfigureAwait(false);
    }

    private static async Task<EnvelopeFileResult> EncryptFileCoreAsync(string source, string destination, DataKey dataKey, bool overwrite, CancellationToken cancellationToken)
    {
        var plaintext = await ReadCappedAsync(source, cancellationToken).ConfigureAwait(false);
        try
        {
            var text = LegacyEnvelope.Encrypt(dataKey, plaintext);
            long length = await EnvelopeFileOperations.WriteFileAtomicallyAsync(source, destination, overwrite,
                output => output.WriteAsync(text, cancellationToken).AsTask(), cancellationToken).ConfigureAwait(false);
            return new EnvelopeFileResult(source, Path.GetFullPath(destination), null, plaintext.Length, length, dataKey.KeyId);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plaintext);
        }
    }

    private static async Task<byte[]> ReadCappedAsync(string path, CancellationToken cancellationToken)
    {
        await using var input = EnvelopeFileOperations.OpenSource(path);
        if (input.Length > LegacyEnvelope.MaxFileSize)
            throw new EnvelopeException(EnvelopeError.LegacyInvalid,
                $"The file is larger than {LegacyEnvelope.MaxFileSize / (1024 * 1024)} MiB, the most the legacy format handles (it is processed whole in memory).");
        var bytes = new byte[input.Length];
        await input.ReadExactlyAsync(bytes, cancellationToken).ConfigureAwait(false);
        return bytes;
    }
}
