using System.Collections;
using System.Management.Automation;
using EnvelopeKms.Files;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using EnvelopeKms.Kms;
using EnvelopeKms.PowerShell.Infrastructure;
using EnvelopeKms.PowerShell.Errors;

namespace EnvelopeKms.PowerShell.Commands;

/// <summary>Encrypts files with a KMS data key into EKMS envelope files.</summary>
[Cmdlet(VerbsSecurity.Protect, "EnvelopeFile", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = LiteralPathSet)]
[OutputType(typeof(EnvelopeFileResult))]
public sealed class ProtectEnvelopeFileCommand : KmsFileCmdlet
{
    private OutputPaths? _outputs;
    private FileBatch? _batch;
    private Keys.EncryptionContext _context = Keys.EncryptionContext.Empty;
    private DataKeyBatcher? _batcher;
    private int _alreadyProtected;
    private bool _removeYesToAll;
    private bool _removeNoToAll;

    /// <summary>
    /// KMS keys (key id, alias/... or ARN), at most 8. The first generates the data key; each other one also wraps it.
    /// A key ARN (or alias ARN) of another region is sent to that region's endpoint.
    /// </summary>
    [Parameter(Mandatory = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(KmsKeyCompleter))]
    public string[] KeyId { get; set; } = [];

    /// <summary>Pairs bound to the file and to the data key in KMS; the same pairs are needed to decrypt.</summary>
    [Parameter]
    [Alias("Context")]
    public Hashtable? EncryptionContext { get; set; }

    /// <summary>Delete each source once its output has been written and verified by decrypting it (asks for confirmation).</summary>
    [Parameter]
    public SwitchParameter RemoveSource { get; set; }

    /// <summary>Fetch a new data key for every file instead of sharing one across the batch.</summary>
    [Parameter]
    public SwitchParameter DataKeyPerFile { get; set; }

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

    /// <summary>
    /// EKMS (default); Legacy: the KMS documentation sample's four-line AES-EAX format, for scripts built on it;
    /// AlibabaSdk / AlibabaSdkStream: an Alibaba Cloud Encryption SDK message (ASN.1, or the Java SDK's stream layout).
    /// </summary>
    [Parameter]
    [ValidateSet(FileFormats.EkmsName, FileFormats.LegacyName, FileFormats.AlibabaSdkName, FileFormats.AlibabaSdkStreamName)]
    public string Format { get; set; } = FileFormats.EkmsName;

    private FileFormat _format = FileFormats.Ekms;

    protected override void Begin()
    {
        _context = ToContextOrStop(EncryptionContext);
        _format = FileFormats.FromName(Format);
        try
        {
            _format.CheckEncryption(KeyId.Length, _context);
        }
        catch (FormatRuleException e)
        {
            ThrowTerminatingError(ErrorMapper.ToErrorRecord(e, e.Rule is FormatRule.NoContext or FormatRule.ContextTooLarge ? EncryptionContext : KeyId));
        }
        foreach (var key in KeyId) ModuleState.Current.RememberKey(key);
        _outputs = new OutputPaths(this, Destination);
        // Every file is wrapped under -KeyId: a problem with that key fails them all alike.
        _batch = new FileBatch(this, Kms, ThrottleLimit, PassThru, _ => PipelineEnd.SharedKey, EnvelopeFileResults.Report(this), tellReadFromWrite: true, CancellationToken);
        // Ask KMS for the data key while the pipeline starts delivering files, unless nothing may be written
        // (-WhatIf) or every file is to be confirmed first (-Confirm).
        bool whatIf = MyInvocation.BoundParameters.ContainsKey("WhatIf") ? ((SwitchParameter)MyInvocation.BoundParameters["WhatIf"]).IsPresent
            : LanguagePrimitives.IsTrue(GetVariableValue("WhatIfPreference"));
        if (!whatIf && !MyInvocation.BoundParameters.ContainsKey("Confirm")) OpenBatcher().Prefetch(CancellationToken);
    }

    protected override void ProcessRecord()
    {
        foreach (var source in ResolveInputFiles())
        {
            string destination = _outputs!.For(source, System.IO.Path.GetFileName(source) + EnvelopeFormat.FileExtension, CancelWork)!;
            if (IsAlreadyProtected(source))
            {
                _alreadyProtected++;
                WriteVerbose($"Skipping '{source}': it is already an envelope file.");
                continue;
            }
            if (!Force && File.Exists(destination))
            {
                _batch!.Refuse(source, new DestinationExistsException(destination));
                continue;
            }
            if (RemoveSource && !CheckRemovable(source)) continue;
            string action = RemoveSource ? $"Encrypt to '{destination}', then remove the source" : $"Encrypt to '{destination}'";
            if (!ShouldProcess(source, action)) continue;
            _outputs.WarnAboutLeftoverTempFiles(destination);
            bool remove = RemoveSource && ConfirmRemoval(source);
            long length = new FileInfo(source).Length;
            OpenBatcher();
            var work = new FileWorkQueue.WorkItem(source, length);
            // No read-ahead when the source is to be removed: that would widen the window in which a change to the
            // source, made after it was read, is lost with it.
            if (_format.ReadsAhead && !remove)
            {
                _batch!.StartWithReadAhead(work, (item, createOutput) => ReadAhead(item, destination, createOutput),
                    (item, ahead, ct) => ProtectAsync(item, ahead, destination, remove, ct));
            }
            else _batch!.Start(work, (item, ct) => ProtectAsync(item, null, destination, remove, ct));
        }
    }

    protected override void EndProcessing()
    {
        _batch!.End();
        Input.WriteSkippedDirectorySummary();
        if (_alreadyProtected > 0)
            WriteWarning($"Skipped {_alreadyProtected} file(s) that are already envelope files (EKMS, legacy or Encryption SDK).");
        if (_batcher is not null)
            WriteVerbose($"{_batcher.DataKeysGenerated} data key(s) generated for {_batch.CompletedCount} file(s).");
        Kms.WriteRetrySummary();
    }

    /// <summary>A .ekms file that already holds an envelope of a known format (by content) is not encrypted again.</summary>
    private static bool IsAlreadyProtected(string source)
        => source.EndsWith(EnvelopeFormat.FileExtension, StringComparison.OrdinalIgnoreCase) && FileFormats.TryDetect(source) is not null;

    /// <summary>A symbolic link or a file with other hard links is refused before anything is written: deleting its name would leave the plaintext.</summary>
    private bool CheckRemovable(string source)
    {
        try
        {
            SourceRemoval.CheckRemovable(source);
            return true;
        }
        catch (SourceNotRemovableException e)
        {
            _batch!.Refuse(source, e);
            return false;
        }
    }

    /// <summary>Removing a source destroys data: confirm as a ConfirmImpact=High action would, unless -Force.</summary>
    private bool ConfirmRemoval(string source)
    {
        if (Force) return true;
        // -Confirm or -Confirm:$false was given: ShouldProcess already asked (or was told not to) about the removal.
        if (MyInvocation.BoundParameters.ContainsKey("Confirm")) return true;
        bool confirm = GetVariableValue("ConfirmPreference") is ConfirmImpact preference && preference != ConfirmImpact.None && preference <= ConfirmImpact.High;
        if (!confirm) return true;
        return ShouldContinue($"Delete '{source}' after its encrypted copy has been written and verified?", "Remove source file",
            ref _removeYesToAll, ref _removeNoToAll);
    }

    /// <summary>
    /// The batch's data keys, made on the first call: on the pipeline thread, where the KMS client may write verbose
    /// output or end the command (and never under -WhatIf, which makes no KMS client at all).
    /// </summary>
    private DataKeyBatcher OpenBatcher() => _batcher ??= new DataKeyBatcher(
        new CircuitBreakingDataKeyProvider(new KmsDataKeyProvider(Kms.OpenRegional(), new KmsDataKeyProviderOptions { Trace = Kms.QueueVerbose })),
        ResolveBatchKeyIds(), _context, DataKeyPerFile ? DataKeyReuseLimits.PerFile : DataKeyReuseLimits.Default);

    private IReadOnlyList<string>? _sdkArns;

    /// <summary>
    /// The Encryption SDK records each KMS key by ARN: -KeyId values that are ids or aliases are resolved once, with
    /// DescribeKey, on the pipeline thread. KMS is then asked with the ARNs, whose regions pick the endpoints, as the
    /// SDKs take the region from the ARN.
    /// </summary>
    private IReadOnlyList<string> ResolveBatchKeyIds()
    {
        if (!_format.RecordsKeyArns) return KeyId;
        try
        {
            _sdkArns ??= Run(ct => KmsKeyArnResolver.ResolveAsync(Kms.Open(), KeyId, ct));
        }
        catch (Exception e) when (e is KmsException or Credentials.CredentialsException)
        {
            ThrowTerminatingError(ErrorMapper.ToErrorRecord(e, KeyId));
        }
        if (_sdkArns!.Distinct(StringComparer.Ordinal).Count() != _sdkArns!.Count)
        {
            var e = new ArgumentException($"Two -KeyId values name the same KMS key ({string.Join(", ", _sdkArns!)}); an Encryption SDK message holds one data key per key.");
            ThrowTerminatingError(ErrorIds.EnvelopeDuplicateKeyId.ToRecord(e, KeyId));
        }
        return _sdkArns!;
    }

    /// <summary>Runs before the data key is there: reads a small source and creates its output (both need no key).</summary>
    private PreparedFile? ReadAhead(FileWorkQueue.WorkItem item, string destination, bool createOutput)
    {
        var prepared = PreparedFile.TryRead(item.Source);
        if (prepared is not null && createOutput) prepared.TryCreateOutput(destination, Force);
        return prepared;
    }

    private async Task<object?> ProtectAsync(FileWorkQueue.WorkItem item, PreparedFile? readAhead, string destination, bool removeSource, CancellationToken cancellationToken)
    {
        using var lease = await _batcher!.AcquireAsync(item.Length, cancellationToken).ConfigureAwait(false);
        var request = new FileEncryption(item.Source, destination, lease.Key, _context, Force) { KeyArns = _sdkArns, ReadAhead = readAhead, Progress = item.Progress };
        var result = await _format.EncryptAsync(request, cancellationToken).ConfigureAwait(false);
        bool removed = false;
        if (removeSource)
        {
            // Only after the output on disk decrypts: a source is never removed before its copy is proven good.
            await _format.VerifyAsync(destination, lease.Key, cancellationToken).ConfigureAwait(false);
            SourceRemoval.Remove(item.Source, destination);
            removed = true;
        }
        return new EnvelopeFileResult
        {
            Operation = "Protect",
            Path = result.Destination,
            Source = result.Source,
            KeyId = lease.Key.WrappedKeys[0].KeyId,
            Region = lease.Key.WrappedKeys[0].Region.Length == 0 ? null : lease.Key.WrappedKeys[0].Region,
            Format = _format.Name,
            Length = result.OutputLength,
            SourceRemoved = removed,
        };
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            CancelWork();
            _batch?.Dispose(); // first: waits for the files in flight
            _batcher?.Dispose();
        }
        base.Dispose(disposing);
    }
}
