using System.Management.Automation;
using EnvelopeKms.Files;
using EnvelopeKms.Legacy;
using EnvelopeKms.PowerShell.Infrastructure;

namespace EnvelopeKms.PowerShell.Commands;

/// <summary>Shows an envelope file's header (EKMS, legacy or Encryption SDK) — format, suite, KMS keys, encryption context, sizes — without any KMS call.</summary>
[Cmdlet(VerbsCommon.Get, "EnvelopeFileInfo", DefaultParameterSetName = "LiteralPath")]
[OutputType(typeof(EnvelopeFileInfo))]
public sealed class GetEnvelopeFileInfoCommand : EnvelopeCmdlet
{
    private int _skippedDirectories;

    [Parameter(Mandatory = true, Position = 0, ParameterSetName = "Path", ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = [];

    [Parameter(Mandatory = true, ParameterSetName = "LiteralPath", ValueFromPipelineByPropertyName = true)]
    [Alias("PSPath", "LP")]
    [ValidateNotNullOrEmpty]
    public string[] LiteralPath { get; set; } = [];

    protected override void ProcessRecord()
    {
        bool literal = ParameterSetName == "LiteralPath";
        foreach (var file in FilePathResolver.Resolve(this, literal ? LiteralPath : Path, literal, ref _skippedDirectories))
        {
            try
            {
                WriteObject(Run(ct => ReadAsync(file, ct)));
            }
            catch (Exception e) when (e is not PipelineStoppedException and not OperationCanceledException)
            {
                WriteError(ErrorMapper.ToErrorRecord(e, file));
            }
        }
    }

    protected override void EndProcessing() => FilePathResolver.WriteSkippedDirectorySummary(this, _skippedDirectories);

    private static async Task<EnvelopeFileInfo> ReadAsync(string file, CancellationToken cancellationToken)
    {
        long length = new FileInfo(file).Length;
        var format = await LegacyFileOperations.DetectFormatAsync(file, cancellationToken).ConfigureAwait(false);
        if (AlibabaSdkFormats.LayoutOf(format) is not null)
        {
            var sdk = await AlibabaSdkFileOperations.ReadHeaderAsync(file, cancellationToken).ConfigureAwait(false);
            return new EnvelopeFileInfo
            {
                Path = file,
                Format = AlibabaSdkFormats.NameOf(sdk.Layout),
                Version = sdk.Version,
                Suite = AlibabaSdkFormats.Describe(sdk.Algorithm),
                KeyIds = sdk.EncryptedDataKeys.Select(k => k.CmkArn).ToArray(),
                WrappedKeys = sdk.WrappedKeys.Select(EnvelopeFileInfo.ToInfo).ToArray(),
                EncryptionContext = EnvelopeFileInfo.ToDictionary(sdk.EncryptionContext),
                PlaintextLength = sdk.PlaintextLength,
                Length = length,
            };
        }
        if (format == EnvelopeFileFormat.Legacy)
        {
            if (length > LegacyEnvelope.MaxFileSize)
                throw new Format.EnvelopeException(Format.EnvelopeError.LegacyInvalid, "The file is too large to be a legacy envelope file.");
            var legacy = await LegacyFileOperations.ReadAsync(file, cancellationToken).ConfigureAwait(false);
            return new EnvelopeFileInfo
            {
                Path = file,
                Format = "Legacy",
                Suite = "AES-256-EAX (documentation sample)",
                KeyIds = [],
                WrappedKeys = [EnvelopeFileInfo.ToInfo(legacy.WrappedKey)],
                EncryptionContext = new System.Collections.Specialized.OrderedDictionary(),
                PlaintextLength = legacy.Ciphertext.Length,
                Length = length,
            };
        }
        var header = await EnvelopeFileOperations.ReadHeaderAsync(file, cancellationToken: cancellationToken).ConfigureAwait(false);
        return EnvelopeFileInfo.FromHeader(file, header, length);
    }
}
