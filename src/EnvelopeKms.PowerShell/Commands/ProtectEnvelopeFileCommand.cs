using System.Collections;
using System.Management.Automation;
using EnvelopeKms.Files;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using EnvelopeKms.Kms;
using EnvelopeKms.PowerShell.Infrastructure;

namespace EnvelopeKms.PowerShell.Commands;

/// <summary>Encrypts files with a KMS data key into EKMS envelope files.</summary>
[Cmdlet(VerbsSecurity.Protect, "EnvelopeFile", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = PathSet)]
[OutputType(typeof(EnvelopeFileResult))]
public sealed class ProtectEnvelopeFileCommand : EnvelopeFileCmdlet
{
    private Keys.EncryptionContext _context = Keys.EncryptionContext.Empty;
    private DataKeyBatcher? _batcher;
    private FileWorkQueue? _queue;
    private ProgressReporter? _progress;
    private string? _destinationFile;
    private string? _destinationDirectory;
    private int _inputs;
    private int _alreadyProtected;

    /// <summary>KMS keys (key id, alias/... or ARN). The first generates the data key; each other one also wraps it.</summary>
    [Parameter(Mandatory = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(KmsKeyCompleter))]
    public string[] KeyId { get; set; } = [];

    /// <summary>Pairs bound to the file and to the data key in KMS; the same pairs are needed to decrypt.</summary>
    [Parameter]
    [Alias("Context")]
    public Hashtable? EncryptionContext { get; set; }

    /// <summary>A folder for the outputs, or a file name when there is one input. Default: beside each source, with .ekms added.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Destination { get; set; }

    /// <summary>Overwrite existing outputs.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <summary>Write a result object for each file written.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    /// <summary>Delete each source once its output has been written and verified by decrypting it (asks for confirmation).</summary>
    [Parameter]
    public SwitchParameter RemoveSource { get; set; }

    /// <summary>Files processed at once.</summary>
    [Parameter]
    [ValidateRange(1, 256)]
    public int ThrottleLimit { get; set; } = Math.Max(2, Environment.ProcessorCount * 2);

    /// <summary>Fetch a new data key for every file instead of sharing one across the batch.</summary>
    [Parameter]
    public SwitchParameter DataKeyPerFile { get; set; }

    /// <summary>EKMS (default), or Legacy: the KMS documentation sample's four-line AES-EAX format, for scripts built on it.</summary>
    [Parameter]
    [ValidateSet("EKMS", "Legacy")]
    public string Format { get; set; } = "EKMS";

    private bool Legacy => string.Equals(Format, "Legacy", StringComparison.OrdinalIgnoreCase);

    protected override void BeginProcessing()
    {
        try
        {
            _context = ToContext(EncryptionContext);
        }
        catch (ArgumentException e)
        {
            ThrowTerminatingError(new ErrorRecord(e, "EnvelopeContextInvalid", ErrorCategory.InvalidArgument, EncryptionContext));
        }
        if (Legacy && _context.Count > 0)
            ThrowTerminatingError(new ErrorRecord(new ArgumentException("The legacy format has no encryption context; remove -EncryptionContext or use -Format EKMS."),
                "EnvelopeLegacyNoContext", ErrorCategory.InvalidArgument, EncryptionContext));
        if (Legacy && KeyId.Length > 1)
            ThrowTerminatingError(new ErrorRecord(new ArgumentException("The legacy format holds one wrapped key; give one -KeyId."),
                "EnvelopeLegacyOneKey", ErrorCategory.InvalidArgument, KeyId));
        if (KeyId.Length > EnvelopeFormat.MaxWrappedKeysHardLimit)
            ThrowTerminatingError(new ErrorRecord(new ArgumentException($"At most {EnvelopeFormat.MaxWrappedKeysHardLimit} KMS keys can wrap one file."),
                "EnvelopeTooManyKeys", ErrorCategory.InvalidArgument, KeyId));
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
        foreach (var key in KeyId) ModuleState.Current.RememberKey(key);
        _progress = new ProgressReporter(this, "Protect-EnvelopeFile");
        _queue = new FileWorkQueue(ThrottleLimit, OnCompleted, _progress.Update, CancellationToken);
    }

    protected override void ProcessRecord()
    {
        foreach (var source in ResolveInputFiles())
        {
            string destination = DestinationFor(source);
            if (IsAlreadyProtected(source))
            {
                _alreadyProtected++;
                WriteVerbose($"Skipping '{source}': it is already an EKMS envelope file.");
                continue;
            }
            if (!Force && File.Exists(destination))
            {
                WriteError(new ErrorRecord(new DestinationExistsException(destination), "EnvelopeDestinationExists", ErrorCategory.ResourceExists, source));
                continue;
            }
            if (!ShouldProcess(source, $"Encrypt to '{destination}'")) continue;
            WarnAboutLeftoverTempFiles(destination);
            bool remove = RemoveSource && ConfirmRemoval(source);
            long length = new FileInfo(source).Length;
            _ = Batcher; // created here, on the pipeline thread, where the KMS client may write verbose output or errors
            _queue!.Start(new FileWorkQueue.WorkItem(source, length), (item, ct) => ProtectAsync(item, destination, remove, ct));
        }
    }

    protected override void EndProcessing()
    {
        _queue!.Drain();
        _progress!.Complete();
        WriteSkippedDirectorySummary();
        if (_alreadyProtected > 0)
            WriteWarning($"Skipped {_alreadyProtected} file(s) that are already EKMS envelope files.");
        if (_batcher is not null)
            WriteVerbose($"{_batcher.DataKeysGenerated} data key(s) generated for {_queue.CompletedCount} file(s).");
        WriteRetrySummary();
    }

    private string DestinationFor(string source)
    {
        string suffix = EnvelopeFormat.FileExtension;
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
        if (_destinationDirectory is not null) return System.IO.Path.Combine(_destinationDirectory, System.IO.Path.GetFileName(source) + suffix);
        return source + suffix;
    }

    private static bool IsAlreadyProtected(string source)
    {
        if (!source.EndsWith(EnvelopeFormat.FileExtension, StringComparison.OrdinalIgnoreCase)) return false;
        try
        {
            using var stream = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1);
            Span<byte> prefix = stackalloc byte[8];
            return stream.ReadAtLeast(prefix, 8, throwOnEndOfStream: false) == 8 && prefix.SequenceEqual(EnvelopeFormat.Magic);
        }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }

    /// <summary>Removing a source destroys data: confirm as a ConfirmImpact=High action would, unless -Force.</summary>
    private bool ConfirmRemoval(string source)
    {
        if (Force) return true;
        bool confirm = MyInvocation.BoundParameters.TryGetValue("Confirm", out var value)
            ? ((SwitchParameter)value).IsPresent
            : GetVariableValue("ConfirmPreference") is ConfirmImpact preference && preference != ConfirmImpact.None && preference <= ConfirmImpact.High;
        if (!confirm) return true;
        return ShouldContinue($"Delete '{source}' after its encrypted copy has been written and verified?", "Remove source file");
    }

    private DataKeyBatcher Batcher => _batcher ??= new DataKeyBatcher(
        new CircuitBreakingDataKeyProvider(new KmsDataKeyProvider(Client)), KeyId, _context, DataKeyPerFile ? DataKeyReuseLimits.PerFile : DataKeyReuseLimits.Default);

    private async Task<object?> ProtectAsync(FileWorkQueue.WorkItem item, string destination, bool removeSource, CancellationToken cancellationToken)
    {
        using var lease = await Batcher.AcquireAsync(item.Length, cancellationToken).ConfigureAwait(false);
        EnvelopeKms.Files.EnvelopeFileResult result = Legacy
            ? await LegacyFileOperations.EncryptFileAsync(item.Source, destination, lease.Key, Force, cancellationToken).ConfigureAwait(false)
            : await EnvelopeFileOperations.EncryptFileAsync(item.Source, destination, lease.Key, _context, Force, null, item.Progress, cancellationToken).ConfigureAwait(false);
        bool removed = false;
        if (removeSource)
        {
            // Only after the output on disk decrypts: a source is never removed before its copy is proven good.
            if (Legacy) await VerifyLegacyAsync(destination, lease.Key, cancellationToken).ConfigureAwait(false);
            else await EnvelopeFileOperations.VerifyFileAsync(destination, lease.Key, cancellationToken).ConfigureAwait(false);
            File.Delete(item.Source);
            removed = true;
        }
        return new EnvelopeFileResult
        {
            Operation = "Protect",
            Path = result.Destination,
            Source = result.Source,
            KeyId = lease.Key.WrappedKeys[0].KeyId,
            Format = Legacy ? "Legacy" : "EKMS",
            Length = result.OutputLength,
            SourceRemoved = removed,
        };
    }

    private static async Task VerifyLegacyAsync(string path, DataKey key, CancellationToken cancellationToken)
    {
        var envelope = EnvelopeKms.Legacy.LegacyEnvelope.Parse(await File.ReadAllBytesAsync(path, cancellationToken).ConfigureAwait(false));
        System.Security.Cryptography.CryptographicOperations.ZeroMemory(envelope.Decrypt(key));
    }

    private void OnCompleted(FileWorkQueue.Completion completion)
    {
        if (completion.Error is null)
        {
            var result = (EnvelopeFileResult)completion.Result!;
            WriteVerbose($"Encrypted '{result.Source}' to '{result.Path}' with KMS key {result.KeyId}{(result.SourceRemoved ? "; source removed" : "")}.");
            if (PassThru) WriteObject(result);
            return;
        }
        var record = ErrorMapper.ToErrorRecord(completion.Error, completion.Item.Source);
        // A key or credential problem fails every file the same way: stop once instead of an error per file.
        if (record.FullyQualifiedErrorId is "KmsAuthenticationFailed" or "KmsCredentialsFailed" or "KmsConfigurationInvalid" or "KmsKeyNotFound" or "KmsRefused" or "KmsClockSkew" or "KmsInvalidParameter")
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
            _batcher?.Dispose();
        }
        base.Dispose(disposing);
    }
}
