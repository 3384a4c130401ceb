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
/// One file given by parameter: $true for a file that decrypts, $false for one that does not (the reason goes to
/// the verbose stream), so <c>if (Test-EnvelopeFile x.ekms)</c> works. A batch (piped input, or a parameter that
/// names several files): one <see cref="EnvelopeFileTestResult"/> per file, naming it, with the error id and the
/// message of a failure. Errors only for what prevents the check (missing file, KMS unreachable, bad credentials).
/// </summary>
[Cmdlet(VerbsDiagnostic.Test, "EnvelopeFile", DefaultParameterSetName = LiteralPathSet)]
[OutputType(typeof(bool), typeof(EnvelopeFileTestResult))]
public sealed class TestEnvelopeFileCommand : KmsFileCmdlet
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

    protected override void Begin()
    {
        _required = ToContextOrStop(EncryptionContext);
    }

    protected override void ProcessRecord()
    {
        var files = ResolveInputFiles();
        // A bare boolean only when the answer cannot be about another file: one file, named by parameter.
        bool single = !MyInvocation.ExpectingInput && files.Count == 1;
        foreach (var file in files)
        {
            _keys ??= Kms.CreateUnwrappingKeyProvider(AllowedKeyId);
            try
            {
                _slotProblem = null;
                var (keyId, entry) = RunAndTrace(ct => VerifyAsync(file, ct));
                string? region = Kms.RegionOfUnwrap(entry);
                WriteVerbose($"'{file}' authenticates (KMS key {keyId}{(region is null ? "" : $", region {region}")}).");
                if (_slotProblem is not null) WriteWarning($"'{file}': {_slotProblem} {ErrorMapper.SlotProblemHint}");
                WriteObject(single ? true : new EnvelopeFileTestResult { Path = file, Result = true, KeyId = keyId, Region = region });
            }
            catch (Exception e) when (e is EnvelopeException or KeyProviderException { Error: KeyProviderError.NoMatchingKey or KeyProviderError.Refused or KeyProviderError.InvalidDataKey })
            {
                Kms.WriteQueuedVerbose();
                WriteVerbose($"'{file}' does not authenticate: {e.Message}");
                WriteObject(single ? false : new EnvelopeFileTestResult { Path = file, Result = false, ErrorId = ErrorMapper.IdOf(e, FileAccess.Read).Name, Message = e.Message });
            }
            catch (Exception e) when (e is not PipelineStoppedException and not OperationCanceledException)
            {
                Kms.WriteQueuedVerbose();
                WriteError(ErrorMapper.ToErrorRecord(e, file, FileAccess.Read));
            }
        }
    }

    protected override void EndProcessing() => Input.WriteSkippedDirectorySummary();

    private (string? KeyId, WrappedDataKey? Entry) RunAndTrace(Func<CancellationToken, Task<(string?, WrappedDataKey?)>> verify)
    {
        var result = Run(verify);
        Kms.WriteQueuedVerbose();
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
