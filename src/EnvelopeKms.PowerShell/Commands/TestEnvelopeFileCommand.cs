using System.Collections;
using System.Management.Automation;
using EnvelopeKms.Files;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using EnvelopeKms.Kms;
using EnvelopeKms.PowerShell.Infrastructure;

using EnvelopeKms.PowerShell.Errors;

namespace EnvelopeKms.PowerShell.Commands;

/// <summary>
/// Fully authenticates envelope files — key commitment, header and every frame — without writing plaintext anywhere.
/// Returns $true for a file that decrypts, $false for one that does not (the reason goes to the verbose stream);
/// errors only for what prevents the check (missing file, KMS unreachable, bad credentials).
/// </summary>
[Cmdlet(VerbsDiagnostic.Test, "EnvelopeFile", DefaultParameterSetName = LiteralPathSet)]
[OutputType(typeof(bool))]
public sealed class TestEnvelopeFileCommand : EnvelopeFileCmdlet
{
    private Keys.EncryptionContext _required = Keys.EncryptionContext.Empty;
    private CachingDataKeyProvider? _keys;
    private string? _slotProblem;

    [Parameter]
    [Alias("Context")]
    public Hashtable? EncryptionContext { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(KmsKeyCompleter))]
    public string[]? AllowedKeyId { get; set; }

    protected override void BeginProcessing()
    {
        _required = ToContextOrStop(EncryptionContext);
    }

    protected override void ProcessRecord()
    {
        foreach (var file in ResolveInputFiles())
        {
            _keys ??= CreateUnwrappingKeyProvider(AllowedKeyId);
            try
            {
                _slotProblem = null;
                var (keyId, entry) = RunAndTrace(ct => VerifyAsync(file, ct));
                string? region = RegionOfUnwrap(entry);
                WriteVerbose($"'{file}' authenticates (KMS key {keyId}{(region is null ? "" : $", region {region}")}).");
                if (_slotProblem is not null) WriteWarning($"'{file}': {_slotProblem} {ErrorMapper.SlotProblemHint}");
                WriteObject(true);
            }
            catch (Exception e) when (e is EnvelopeException or KeyProviderException { Error: KeyProviderError.NoMatchingKey or KeyProviderError.Refused or KeyProviderError.InvalidDataKey })
            {
                WriteQueuedVerbose();
                WriteVerbose($"'{file}' does not authenticate: {e.Message}");
                WriteObject(false);
            }
            catch (Exception e) when (e is not PipelineStoppedException and not OperationCanceledException)
            {
                WriteQueuedVerbose();
                WriteError(ErrorMapper.ToErrorRecord(e, file, FileAccess.Read));
            }
        }
        WriteSkippedDirectorySummary();
    }

    private (string? KeyId, WrappedDataKey? Entry) RunAndTrace(Func<CancellationToken, Task<(string?, WrappedDataKey?)>> verify)
    {
        var result = Run(verify);
        WriteQueuedVerbose();
        return result;
    }

    private async Task<(string?, WrappedDataKey?)> VerifyAsync(string file, CancellationToken cancellationToken)
    {
        var format = await FileFormats.OfFileAsync(file, cancellationToken).ConfigureAwait(false);
        var result = await format.VerifyAsync(file, _keys!, _required, cancellationToken).ConfigureAwait(false);
        _slotProblem = result.SlotProblem;
        return (result.KeyId, result.UnwrappedFrom);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _keys?.Dispose();
        base.Dispose(disposing);
    }
}
