using System.Collections;
using System.Management.Automation;
using EnvelopeKms.Files;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using EnvelopeKms.Kms;
using EnvelopeKms.PowerShell.Infrastructure;

namespace EnvelopeKms.PowerShell.Commands;

/// <summary>Decrypts EKMS envelope files (and the KMS documentation sample's legacy files).</summary>
[Cmdlet(VerbsSecurity.Unprotect, "EnvelopeFile", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = PathSet)]
[OutputType(typeof(EnvelopeFileResult))]
public sealed class UnprotectEnvelopeFileCommand : EnvelopeFileCmdlet
{
    private static readonly string[] StrippedSuffixes = [EnvelopeFormat.FileExtension, ".encrypted", ".enc"];
    private Keys.EncryptionContext _required = Keys.EncryptionContext.Empty;
    private CachingDataKeyProvider? _keys;
    private FileWorkQueue? _queue;
    private ProgressReporter? _progress;
    private string? _destinationFile;
    private string? _destinationDirectory;
    private int _inputs;

    /// <summary>Pairs that must be in each file's encryption context, with these values.</summary>
    [Parameter]
    [Alias("Context")]
    public Hashtable? EncryptionContext { get; set; }

    /// <summary>Only these KMS keys (ids, aliases or ARNs) may decrypt; entries under other keys are not sent to KMS.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(KmsKeyCompleter))]
    public string[]? AllowedKeyId { get; set; }

    /// <summary>A folder for the outputs, or a file name when there is one input. Default: beside each source, without .ekms.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Destination { get; set; }

    [Parameter]
    public SwitchParameter Force { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    [Parameter]
    [ValidateRange(1, 256)]
    public int ThrottleLimit { get; set; } = Math.Max(2, Environment.ProcessorCount * 2);

    protected override void BeginProcessing()
    {
        try
        {
            _required = ToContext(EncryptionContext);
        }
        catch (ArgumentException e)
        {
            ThrowTerminatingError(new ErrorRecord(e, "EnvelopeContextInvalid", ErrorCategory.InvalidArgument, EncryptionContext));
        }
        if (Destination is not null)
        {
            string resolved = ResolveDestination(Destination);
            bool endsWithSeparator = Destination.EndsWith('/') || Destination.EndsWith(System.IO.Path.DirectorySeparatorChar);
            if (Directory.Exists(resolved) || endsWithSeparator)
            {
                if (!Directory.Exists(resolved) && ShouldProcess(resolved, "Create destination directory")) Directory.CreateDirectory(resolved);
                _destinationDirectory = resolved;
            }
            else _destinationFile = resolved;
        }
        _progress = new ProgressReporter(this, "Unprotect-EnvelopeFile");
        _queue = new FileWorkQueue(ThrottleLimit, OnCompleted, _progress.Update, CancellationToken);
    }

    protected override void ProcessRecord()
    {
        foreach (var source in ResolveInputFiles())
        {
            string? destination = DestinationFor(source);
            if (destination is null)
            {
                WriteError(new ErrorRecord(new ArgumentException($"Cannot tell the output name of '{source}': it does not end in .ekms. Give -Destination."),
                    "EnvelopeDestinationRequired", ErrorCategory.InvalidArgument, source));
                continue;
            }
            if (!Force && File.Exists(destination))
            {
                WriteError(new ErrorRecord(new DestinationExistsException(destination), "EnvelopeDestinationExists", ErrorCategory.ResourceExists, source));
                continue;
            }
            if (!ShouldProcess(source, $"Decrypt to '{destination}'")) continue;
            WarnAboutLeftoverTempFiles(destination);
            _keys ??= new CachingDataKeyProvider(new CircuitBreakingDataKeyProvider(
                new KmsDataKeyProvider(Client, new KmsDataKeyProviderOptions { AllowedKeyIds = AllowedKeyId })));
            _queue!.Start(new FileWorkQueue.WorkItem(source, new FileInfo(source).Length), (item, ct) => UnprotectAsync(item, destination, ct));
        }
    }

    protected override void EndProcessing()
    {
        _queue!.Drain();
        _progress!.Complete();
        WriteSkippedDirectorySummary();
        WriteRetrySummary();
    }

    private string? DestinationFor(string source)
    {
        if (_destinationFile is not null)
        {
            if (++_inputs > 1)
            {
                CancelWork();
                ThrowTerminatingError(new ErrorRecord(new ArgumentException($"-Destination '{Destination}' names a file, but more than one file was given. Give a folder instead."),
                    "EnvelopeDestinationNotDirectory", ErrorCategory.InvalidArgument, Destination));
            }
            return _destinationFile;
        }
        string name = System.IO.Path.GetFileName(source);
        string? stripped = StrippedSuffixes
            .Where(s => name.Length > s.Length && name.EndsWith(s, StringComparison.OrdinalIgnoreCase))
            .Select(s => name[..^s.Length])
            .FirstOrDefault();
        if (stripped is null) return null;
        return System.IO.Path.Combine(_destinationDirectory ?? System.IO.Path.GetDirectoryName(source)!, stripped);
    }

    private async Task<object?> UnprotectAsync(FileWorkQueue.WorkItem item, string destination, CancellationToken cancellationToken)
    {
        var format = await LegacyFileOperations.DetectFormatAsync(item.Source, cancellationToken).ConfigureAwait(false);
        EnvelopeKms.Files.EnvelopeFileResult result;
        if (format == EnvelopeFileFormat.Legacy)
        {
            if (_required.Count > 0)
                throw new EnvelopeException(EnvelopeError.ContextMismatch, "This is a legacy (documentation sample) file, which has no encryption context; the required context cannot match.");
            result = await LegacyFileOperations.DecryptFileAsync(item.Source, destination, _keys!, Force, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            var options = new EnvelopeDecryptOptions { RequiredContext = _required };
            result = await EnvelopeFileOperations.DecryptFileAsync(item.Source, destination, _keys!, Force, options, item.Progress, cancellationToken).ConfigureAwait(false);
        }
        return new EnvelopeFileResult
        {
            Operation = "Unprotect",
            Path = result.Destination,
            Source = result.Source,
            KeyId = result.KeyId,
            Format = format == EnvelopeFileFormat.Legacy ? "Legacy" : "EKMS",
            Length = result.OutputLength,
        };
    }

    private void OnCompleted(FileWorkQueue.Completion completion)
    {
        if (completion.Error is null)
        {
            var result = (EnvelopeFileResult)completion.Result!;
            ModuleState.Current.RememberKey(result.KeyId);
            WriteVerbose($"Decrypted '{result.Source}' to '{result.Path}' with KMS key {result.KeyId}.");
            if (PassThru) WriteObject(result);
            return;
        }
        var record = ErrorMapper.ToErrorRecord(completion.Error, completion.Item.Source);
        if (record.FullyQualifiedErrorId is "KmsAuthenticationFailed" or "KmsCredentialsFailed" or "KmsConfigurationInvalid" or "KmsClockSkew")
        {
            CancelWork();
            ThrowTerminatingError(record);
        }
        WriteError(record);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            CancelWork();
            _queue?.Dispose();
            _keys?.Dispose();
        }
        base.Dispose(disposing);
    }
}
