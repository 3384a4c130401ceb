using System.Security.Cryptography;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using EnvelopeKms.Legacy;

namespace EnvelopeKms.Files;

/// <summary>
/// The KMS documentation sample's format (four base64 lines, AES-EAX): one wrapped key, no encryption context,
/// processed whole in memory, so files are capped at <see cref="LegacyEnvelope.MaxFileSize"/> before they are read.
/// </summary>
internal sealed class LegacyFileFormat : FileFormat
{
    public override EnvelopeFileFormat Id => EnvelopeFileFormat.Legacy;
    public override string Name => FileFormats.LegacyName;
    public override bool HasContext => false;
    public override int MaxKeys => 1;

    /// <summary>Cheap sniffing for detection (a base64 line); parsing decides.</summary>
    internal static bool Matches(ReadOnlySpan<byte> prefix) => LegacyEnvelope.LooksLikeLegacy(prefix);

    public override async Task<FileDescription> DescribeAsync(string path, CancellationToken cancellationToken = default)
    {
        var legacy = LegacyEnvelope.Parse(await ReadCappedAsync(path, cancellationToken).ConfigureAwait(false));
        return new FileDescription(path, this, new FileInfo(path).Length, [], [legacy.WrappedKey], EncryptionContext.Empty)
        {
            Suite = "AES-256-EAX (documentation sample)",
            PlaintextLength = legacy.Ciphertext.Length,
        };
    }

    public override async Task<EnvelopeFileResult> EncryptAsync(FileEncryption r, CancellationToken cancellationToken = default)
    {
        CheckEncryption(r.DataKey.WrappedKeys.Count, r.Context);
        string source = Path.GetFullPath(r.Source);
        var plaintext = await ReadCappedAsync(source, cancellationToken).ConfigureAwait(false);
        try
        {
            var text = LegacyEnvelope.Encrypt(r.DataKey, plaintext);
            long length = await EnvelopeFileOperations.WriteFileAtomicallyAsync(source, r.Destination, r.Overwrite,
                output => output.WriteAsync(text, cancellationToken).AsTask(), cancellationToken).ConfigureAwait(false);
            return new EnvelopeFileResult(source, Path.GetFullPath(r.Destination), null, plaintext.Length, length, r.DataKey.KeyId);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plaintext);
        }
    }

    public override async Task<EnvelopeFileResult> DecryptAsync(FileDecryption r, CancellationToken cancellationToken = default)
    {
        CheckNoContextRequired(r.RequiredContext);
        string source = Path.GetFullPath(r.Source);
        var envelope = LegacyEnvelope.Parse(await ReadCappedAsync(source, cancellationToken).ConfigureAwait(false));
        using var dataKey = await r.KeyProvider.DecryptDataKeyAsync([envelope.WrappedKey], EncryptionContext.Empty, cancellationToken).ConfigureAwait(false);
        var plaintext = envelope.Decrypt(dataKey);
        try
        {
            long length = await EnvelopeFileOperations.WriteFileAtomicallyAsync(source, r.Destination, r.Overwrite,
                output => output.WriteAsync(plaintext, cancellationToken).AsTask(), cancellationToken).ConfigureAwait(false);
            return new EnvelopeFileResult(source, Path.GetFullPath(r.Destination), null, length, length, dataKey.KeyId, dataKey.UnwrappedFrom);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plaintext);
        }
    }

    public override async Task<FileVerification> VerifyAsync(string path, IDataKeyProvider keyProvider, EncryptionContext requiredContext,
        CancellationToken cancellationToken = default)
    {
        CheckNoContextRequired(requiredContext);
        var envelope = LegacyEnvelope.Parse(await ReadCappedAsync(Path.GetFullPath(path), cancellationToken).ConfigureAwait(false));
        using var dataKey = await keyProvider.DecryptDataKeyAsync([envelope.WrappedKey], EncryptionContext.Empty, cancellationToken).ConfigureAwait(false);
        CryptographicOperations.ZeroMemory(envelope.Decrypt(dataKey));
        return new FileVerification(dataKey.KeyId, dataKey.UnwrappedFrom, null);
    }

    public override async Task VerifyAsync(string path, DataKey dataKey, CancellationToken cancellationToken = default)
    {
        // The file was just written from a capped plaintext; as base64 text it may be longer than the cap, so it is
        // read whole without it.
        var envelope = LegacyEnvelope.Parse(await File.ReadAllBytesAsync(path, cancellationToken).ConfigureAwait(false));
        CryptographicOperations.ZeroMemory(envelope.Decrypt(dataKey));
    }

    private static void CheckNoContextRequired(EncryptionContext required)
    {
        if (required.Count > 0)
            throw new EnvelopeException(EnvelopeError.ContextMismatch, "This is a legacy (documentation sample) file, which has no encryption context; the required context cannot match.");
    }

    /// <summary>Reads a file whole, after checking its length against the cap: nothing larger is allocated.</summary>
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
