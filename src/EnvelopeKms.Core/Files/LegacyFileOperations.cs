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
        var envelope = LegacyEnvelope.Parse(await ReadCappedAsync(source, cancellationToken).ConfigureAwait(false));
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

    public static async Task<EnvelopeFileResult> EncryptFileAsync(string source, string destination, DataKey dataKey,
        bool overwrite = false, CancellationToken cancellationToken = default)
    {
        source = Path.GetFullPath(source);
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
