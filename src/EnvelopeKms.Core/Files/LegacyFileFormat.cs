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
        var legacy = await ReadAsync(path, cancellationToken).ConfigureAwait(false);
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
        // The plaintext, its ciphertext, the base64 text as a string and its bytes: about six times the file, shared.
        return await WholeMessageBudget.RunAsync(6 * Math.Min(new FileInfo(source).Length, LegacyEnvelope.MaxFileSize),
            () => EncryptCoreAsync(source, r, cancellationToken), cancellationToken).ConfigureAwait(false);
    }

    private static async Task<EnvelopeFileResult> EncryptCoreAsync(string source, FileEncryption r, CancellationToken cancellationToken)
    {
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
        return await WholeMessageBudget.RunAsync(DecryptBytes(source), () => DecryptCoreAsync(source, r, cancellationToken), cancellationToken)
            .ConfigureAwait(false);
    }

    private static async Task<EnvelopeFileResult> DecryptCoreAsync(string source, FileDecryption r, CancellationToken cancellationToken)
    {
        var envelope = await ReadAsync(source, cancellationToken).ConfigureAwait(false);
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

    public override Task<FileVerification> VerifyAsync(string path, IDataKeyProvider keyProvider, EncryptionContext requiredContext,
        CancellationToken cancellationToken = default)
    {
        CheckNoContextRequired(requiredContext);
        return WholeMessageBudget.RunAsync(DecryptBytes(path), async () =>
        {
            var envelope = await ReadAsync(path, cancellationToken).ConfigureAwait(false);
            using var dataKey = await keyProvider.DecryptDataKeyAsync([envelope.WrappedKey], EncryptionContext.Empty, cancellationToken).ConfigureAwait(false);
            CryptographicOperations.ZeroMemory(envelope.Decrypt(dataKey));
            return new FileVerification(dataKey.KeyId, dataKey.UnwrappedFrom, null);
        }, cancellationToken);
    }

    public override Task VerifyAsync(string path, DataKey dataKey, CancellationToken cancellationToken = default)
        => WholeMessageBudget.RunAsync(DecryptBytes(path), async () =>
        {
            var envelope = await ReadAsync(path, cancellationToken).ConfigureAwait(false);
            CryptographicOperations.ZeroMemory(envelope.Decrypt(dataKey));
        }, cancellationToken);

    private static void CheckNoContextRequired(EncryptionContext required)
    {
        if (required.Count > 0)
            throw new EnvelopeException(EnvelopeError.ContextMismatch, "This is a legacy (documentation sample) file, which has no encryption context; the required context cannot match.");
    }

    /// <summary>
    /// Reads and parses a legacy file, checking each line's shape as it is read (<see cref="LegacyEnvelope.ReadAsync"/>):
    /// a file over the size cap is refused before it is read, and one that only starts like a legacy file after a
    /// few bytes.
    /// </summary>
    internal static async Task<LegacyEnvelope> ReadAsync(string path, CancellationToken cancellationToken = default)
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

    /// <summary>Reads a plaintext whole, after checking its length against the cap: nothing larger is allocated.</summary>
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
