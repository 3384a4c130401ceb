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

/// <summary>What a decryption found out about the file.</summary>
public sealed record EnvelopeDecryptResult(EnvelopeHeader Header, string? KeyId, WrappedDataKey? UnwrappedFrom, long PlaintextLength);

/// <summary>
/// Stream-to-stream encryption and decryption in the EKMS v1 format. Streams are read and written sequentially,
/// in constant memory. The decrypting stream API writes only authenticated frames, but a later frame may still
/// fail: use <see cref="Files.EnvelopeFileOperations"/> to get all-or-nothing output files.
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
            var header = EnvelopeHeader.Create(dataKey, context, options.FrameLength, messageId, fileKey);
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
        var header = await EnvelopeHeader.ReadAsync(input, options.Limits, cancellationToken).ConfigureAwait(false);
        CheckRequiredContext(header, options.RequiredContext);
        using var dataKey = await UnwrapAsync(header, keyProvider, cancellationToken).ConfigureAwait(false);
        return await DecryptBodyAsync(header, input, output, dataKey, options, progress, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Asks the key provider for the data key (with the header's context) and checks it against the key commitment
    /// and the header tag. If an entry unwraps to a key that does not commit (a substituted entry), the remaining
    /// entries are tried, so a hostile entry cannot stop an honest one from decrypting the file.
    /// </summary>
    public static async Task<DataKey> UnwrapAsync(EnvelopeHeader header, IDataKeyProvider keyProvider, CancellationToken cancellationToken = default)
    {
        var remaining = header.WrappedKeys.ToList();
        byte[] fileKey = SecretBuffers.Track(GC.AllocateArray<byte>(FrameCipher.KeySize, pinned: true));
        try
        {
            while (true)
            {
                var dataKey = await keyProvider.DecryptDataKeyAsync(remaining, header.EncryptionContext, cancellationToken).ConfigureAwait(false);
                try
                {
                    header.Authenticate(dataKey, fileKey);
                    return dataKey;
                }
                catch (EnvelopeException e) when (e.Error == EnvelopeError.KeyCommitmentMismatch && dataKey.UnwrappedFrom is { } used && remaining.Count > 1 && remaining.Remove(used))
                {
                    dataKey.Dispose();
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
    public static void CheckRequiredContext(EnvelopeHeader header, EncryptionContext required)
    {
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
