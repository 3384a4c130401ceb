using System.Collections;
using System.Management.Automation;
using EnvelopeKms.Files;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using EnvelopeKms.Kms;
using EnvelopeKms.PowerShell.Infrastructure;
using EnvelopeKms.PowerShell.Errors;

namespace EnvelopeKms.PowerShell.Commands;

/// <summary>Decrypts EKMS envelope files (and the KMS documentation sample's legacy files and Alibaba Cloud Encryption SDK messages).</summary>
[Cmdlet(VerbsSecurity.Unprotect, "EnvelopeFile", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = LiteralPathSet)]
[OutputType(typeof(EnvelopeFileResult))]
public sealed class UnprotectEnvelopeFileCommand : KmsFileCmdlet
{
    private OutputPaths? _outputs;
    private FileBatch? _batch;
    private static readonly string[] StrippedSuffixes = [EnvelopeFormat.FileExtension, ".encrypted", ".enc"];
    private Keys.EncryptionContext _required = Keys.EncryptionContext.Empty;
    private CachingDataKeyProvider? _keys;

    /// <summary>Pairs that must be in each file's encryption context, with these values.</summary>
    [Parameter]
    [Alias("Context")]
    public Hashtable? EncryptionContext { get; set; }

    /// <summary>Only these KMS keys (ids, aliases or ARNs) may decrypt; entries under other keys are not sent to KMS.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(KmsKeyCompleter))]
    public string[]? AllowedKeyId { get; set; }

    /// <summary>A folder for the outputs, or a file name when there is one input. Default: beside each source.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Destination { get; set; }

    /// <summary>Overwrite existing outputs.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <summary>Write a result object for each file written.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    /// <summary>Files processed at once.</summary>
    [Parameter]
    [ValidateRange(1, 256)]
    public int ThrottleLimit { get; set; } = Math.Max(2, Environment.ProcessorCount * 2);

    protected override void Begin()
    {
        _required = ToContextOrStop(EncryptionContext);
        _outputs = new OutputPaths(this, Destination);
        // Files have their own wrapped keys, so only credential, clock and configuration problems fail them all.
        _batch = new FileBatch(this, Kms, ThrottleLimit, PassThru, _ => PipelineEnd.SharedSession, EnvelopeFileResults.Report(this), tellReadFromWrite: true, CancellationToken);
    }

    protected override void ProcessRecord()
    {
        foreach (var source in ResolveInputFiles())
        {
            string? destination = _outputs!.For(source, StripSuffix(System.IO.Path.GetFileName(source)), CancelWork);
            if (destination is null)
            {
                WriteError(ErrorIds.EnvelopeDestinationRequired.ToRecord(new ArgumentException($"Cannot tell the output name of '{source}': it does not end in .ekms. Give -Destination."), source));
                continue;
            }
            if (!Force && File.Exists(destination))
            {
                _batch!.Refuse(source, new DestinationExistsException(destination));
                continue;
            }
            if (!ShouldProcess(source, $"Decrypt to '{destination}'")) continue;
            _outputs.WarnAboutLeftoverTempFiles(destination);
            _keys ??= Kms.CreateUnwrappingKeyProvider(AllowedKeyId);
            _batch!.StartWithReadAhead(new FileWorkQueue.WorkItem(source, new FileInfo(source).Length), (item, createOutput) => ReadAhead(item, destination, createOutput),
                (item, ahead, ct) => UnprotectAsync(item, ahead, destination, ct));
        }
    }

    protected override void EndProcessing()
    {
        _batch!.End();
        Input.WriteSkippedDirectorySummary();
        Kms.WriteRetrySummary();
    }

    /// <summary>The output name: the input name without .ekms (or the sample's .encrypted / .enc); null if it has none.</summary>
    private static string? StripSuffix(string name) => StrippedSuffixes
        .Where(s => name.Length > s.Length && name.EndsWith(s, StringComparison.OrdinalIgnoreCase))
        .Select(s => name[..^s.Length])
        .FirstOrDefault();

    /// <summary>
    /// Runs before the data key is there: reads a small source and, for a format that reads ahead (the others take
    /// their own paths), creates its output.
    /// </summary>
    private PreparedFile? ReadAhead(FileWorkQueue.WorkItem item, string destination, bool createOutput)
    {
        var prepared = PreparedFile.TryRead(item.Source);
        if (prepared is not null && createOutput && FileFormats.OfContent(prepared.Input).ReadsAhead) prepared.TryCreateOutput(destination, Force);
        return prepared;
    }

    private async Task<object?> UnprotectAsync(FileWorkQueue.WorkItem item, PreparedFile? readAhead, string destination, CancellationToken cancellationToken)
    {
        var format = readAhead is not null
            ? FileFormats.OfContent(readAhead.Input)
            : await FileFormats.OfFileAsync(item.Source, cancellationToken).ConfigureAwait(false);
        var request = new FileDecryption(item.Source, destination, _keys!, _required, Force)
        {
            ReadAhead = format.ReadsAhead ? readAhead : null,
            Progress = item.Progress,
        };
        var result = await format.DecryptAsync(request, cancellationToken).ConfigureAwait(false);
        return new EnvelopeFileResult
        {
            Operation = "Unprotect",
            Path = result.Destination,
            Source = result.Source,
            KeyId = result.KeyId,
            Region = Kms.RegionOfUnwrap(result.UnwrappedFrom),
            Format = format.Name,
            Length = result.OutputLength,
            SlotProblem = result.SlotProblem is { } problem ? $"{problem} {ErrorMapper.SlotProblemHint}" : null,
        };
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            CancelWork();
            _batch?.Dispose(); // first: waits for the files in flight
            _keys?.Dispose();  // then wipes the cached data keys
        }
        base.Dispose(disposing);
    }
}
