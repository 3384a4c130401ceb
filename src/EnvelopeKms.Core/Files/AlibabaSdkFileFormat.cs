using EnvelopeKms.AlibabaSdk;
using EnvelopeKms.Keys;

namespace EnvelopeKms.Files;

/// <summary>
/// An Alibaba Cloud Encryption SDK message (docs/alibaba-sdk-format.md), in its ASN.1 layout or the Java SDK's
/// stream layout: one AEAD message, each KMS key recorded by ARN, a bounded encryption context.
/// </summary>
internal sealed class AlibabaSdkFileFormat(AlibabaSdkLayout layout) : FileFormat
{
    public override EnvelopeFileFormat Id => layout == AlibabaSdkLayout.Asn1 ? EnvelopeFileFormat.AlibabaSdk : EnvelopeFileFormat.AlibabaSdkStream;
    public override string Name => layout == AlibabaSdkLayout.Asn1 ? FileFormats.AlibabaSdkName : FileFormats.AlibabaSdkStreamName;
    public override bool HasContext => true;
    public override bool RecordsKeyArns => true;

    public override void CheckEncryption(int keyCount, EncryptionContext context)
    {
        if (AlibabaSdkHeader.SerializeContext(context).Length > AlibabaSdkFormat.MaxContextBytes)
            throw new FormatRuleException(FormatRule.ContextTooLarge, $"The Encryption SDK formats hold an encryption context of at most {AlibabaSdkFormat.MaxContextBytes} serialized bytes.");
        base.CheckEncryption(keyCount, context);
    }

    public override async Task<FileDescription> DescribeAsync(string path, CancellationToken cancellationToken = default)
    {
        long length = new FileInfo(path).Length;
        var header = await AlibabaSdkFileOperations.ReadHeaderAsync(path, cancellationToken).ConfigureAwait(false);
        return new FileDescription(path, this, length, header.EncryptedDataKeys.Select(k => k.CmkArn).ToArray(), header.WrappedKeys, header.EncryptionContext)
        {
            Version = header.Version,
            Suite = $"{AlibabaSdkFormat.AlgorithmName((int)header.Algorithm)} (Encryption SDK algorithm {(int)header.Algorithm})",
            PlaintextLength = header.PlaintextLength,
        };
    }

    public override Task<EnvelopeFileResult> EncryptAsync(FileEncryption r, CancellationToken cancellationToken = default)
        => AlibabaSdkFileOperations.EncryptFileAsync(r.Source, r.Destination, r.DataKey,
            r.KeyArns ?? throw new ArgumentException("The Encryption SDK formats need the KMS keys' ARNs.", nameof(r)),
            r.Context, layout, r.Overwrite, r.Progress, cancellationToken);

    public override Task<EnvelopeFileResult> DecryptAsync(FileDecryption r, CancellationToken cancellationToken = default)
        => AlibabaSdkFileOperations.DecryptFileAsync(r.Source, r.Destination, r.KeyProvider, r.Overwrite,
            new AlibabaSdkDecryptOptions { RequiredContext = r.RequiredContext }, r.Progress, cancellationToken);

    public override async Task<FileVerification> VerifyAsync(string path, IDataKeyProvider keyProvider, EncryptionContext requiredContext,
        CancellationToken cancellationToken = default)
    {
        var result = await AlibabaSdkFileOperations.VerifyFileAsync(path, keyProvider, new AlibabaSdkDecryptOptions { RequiredContext = requiredContext },
            cancellationToken).ConfigureAwait(false);
        return new FileVerification(result.KeyId, result.UnwrappedFrom, null);
    }

    public override Task VerifyAsync(string path, DataKey dataKey, CancellationToken cancellationToken = default)
        => AlibabaSdkFileOperations.VerifyFileAsync(path, dataKey, cancellationToken);
}
