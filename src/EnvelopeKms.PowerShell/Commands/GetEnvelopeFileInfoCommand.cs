using System.Management.Automation;
using EnvelopeKms.Files;
using EnvelopeKms.PowerShell.Infrastructure;

using EnvelopeKms.PowerShell.Errors;

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
                WriteError(ErrorMapper.ToErrorRecord(e, file, FileAccess.Read));
            }
        }
    }

    protected override void EndProcessing() => FilePathResolver.WriteSkippedDirectorySummary(this, _skippedDirectories);

    private static async Task<EnvelopeFileInfo> ReadAsync(string file, CancellationToken cancellationToken)
    {
        var format = await FileFormats.OfFileAsync(file, cancellationToken).ConfigureAwait(false);
        return EnvelopeFileInfo.From(await format.DescribeAsync(file, cancellationToken).ConfigureAwait(false));
    }
}
