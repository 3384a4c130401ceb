using System.Management.Automation;
using EnvelopeKms.Files;
using EnvelopeKms.PowerShell.Infrastructure;

using EnvelopeKms.PowerShell.Errors;

namespace EnvelopeKms.PowerShell.Commands;

/// <summary>Shows an envelope file's header (EKMS, legacy or Encryption SDK) — format, suite, KMS keys, encryption context, sizes — without any KMS call.</summary>
[Cmdlet(VerbsCommon.Get, "EnvelopeFileInfo", DefaultParameterSetName = LiteralPathSet)]
[OutputType(typeof(EnvelopeFileInfo))]
public sealed class GetEnvelopeFileInfoCommand : EnvelopeFileCmdlet
{
    protected override void ProcessRecord()
    {
        foreach (var file in ResolveInputFiles())
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

    protected override void EndProcessing() => Input.WriteSkippedDirectorySummary();

    private static async Task<EnvelopeFileInfo> ReadAsync(string file, CancellationToken cancellationToken)
    {
        var format = await FileFormats.OfFileAsync(file, cancellationToken).ConfigureAwait(false);
        return EnvelopeFileInfo.From(await format.DescribeAsync(file, cancellationToken).ConfigureAwait(false));
    }
}
