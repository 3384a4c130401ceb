using EnvelopeKms.Format;
using EnvelopeKms.Keys;

namespace EnvelopeKms.Files;

/// <summary>EKMS, versions 1 and 2 (docs/format.md): streamed in frames, any size; small files are read ahead.</summary>
internal sealed class EkmsFileFormat : FileFormat
{
    public override EnvelopeFileFormat Id => EnvelopeFileFormat.Ekms;
    public override string Name => FileFormats.EkmsName;
    public override bool HasContext => true;
    public override bool ReadsAhead => true;

    public override async Task<FileDescription> DescribeAsync(string path, CancellationToken cancellationToken = default)
    {
        long length = new FileInfo(path).Length;
        var header = await EnvelopeFileOperations.ReadHeaderAsync(path, cancellationToken: cancellationToken).ConfigureAwait(false);
        bool v2 = header.Version == EnvelopeFormat.Version2;
        return new FileDescription(path, this, length, header.WrappedKeys.Select(k => k.KeyId).ToArray(), header.WrappedKeys, header.EncryptionContext)
        {
            Version = header.Version,
            Generation = v2 ? header.Generation : null,
            SlotSize = v2 ? header.SlotSize : null,
            SlotGenerations = v2 ? header.Slots.Select(s => s.Generation).ToArray() : null,
            Suite = header.SuiteId == EnvelopeFormat.SuiteAes256GcmHkdfSha512Commit ? "AES-256-GCM/HKDF-SHA-512/commit" : $"0x{header.SuiteId:X4}",
            FrameLength = header.FrameLength,
            PlaintextLength = header.GetPlaintextLength(length),
            MessageId = Convert.ToHexString(header.MessageId).ToLowerInvariant(),
        };
    }

    public override Task<EnvelopeFileResult> EncryptAsync(FileEncryption r, CancellationToken cancellationToken = default) => r.ReadAhead switch
    {
        { Output: { } output } ahead => EnvelopeFileOperations.EncryptFileAsync(ahead.Input, output, r.DataKey, r.Context, null, r.Progress, cancellationToken),
        { } ahead => EnvelopeFileOperations.EncryptFileAsync(ahead.Input, r.Destination, r.DataKey, r.Context, r.Overwrite, null, r.Progress, cancellationToken),
        null => EnvelopeFileOperations.EncryptFileAsync(r.Source, r.Destination, r.DataKey, r.Context, r.Overwrite, null, r.Progress, cancellationToken),
    };

    public override Task<EnvelopeFileResult> DecryptAsync(FileDecryption r, CancellationToken cancellationToken = default)
    {
        var options = new EnvelopeDecryptOptions { RequiredContext = r.RequiredContext };
        return r.ReadAhead switch
        {
            { Output: { } output } ahead => EnvelopeFileOperations.DecryptFileAsync(ahead.Input, output, r.KeyProvider, options, r.Progress, cancellationToken),
            { } ahead => EnvelopeFileOperations.DecryptFileAsync(ahead.Input, r.Destination, r.KeyProvider, r.Overwrite, options, r.Progress, cancellationToken),
            null => EnvelopeFileOperations.DecryptFileAsync(r.Source, r.Destination, r.KeyProvider, r.Overwrite, options, r.Progress, cancellationToken),
        };
    }

    public override async Task<FileVerification> VerifyAsync(string path, IDataKeyProvider keyProvider, EncryptionContext requiredContext,
        CancellationToken cancellationToken = default)
    {
        var options = new EnvelopeDecryptOptions { RequiredContext = requiredContext };
        var result = await EnvelopeFileOperations.VerifyFileAsync(path, keyProvider, options, null, cancellationToken).ConfigureAwait(false);
        return new FileVerification(result.KeyId, result.UnwrappedFrom, result.SlotProblem);
    }

    public override Task VerifyAsync(string path, DataKey dataKey, CancellationToken cancellationToken = default)
        => EnvelopeFileOperations.VerifyFileAsync(path, dataKey, cancellationToken);
}
