using System.Collections;
using System.Management.Automation;
using EnvelopeKms.Files;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using EnvelopeKms.Kms;
using EnvelopeKms.PowerShell.Infrastructure;

namespace EnvelopeKms.PowerShell.Commands;

/// <summary>Encrypts files with a KMS data key into EKMS envelope files.</summary>
[Cmdlet(VerbsSecurity.Protect, "EnvelopeFile", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = LiteralPathSet)]
[OutputType(typeof(EnvelopeFileResult))]
public sealed class ProtectEnvelopeFileCommand : EnvelopeFileWriterCmdlet
{
    private Keys.EncryptionContext _context = Keys.EncryptionContext.Empty;
    private DataKeyBatcher? _batcher;
    private static readonly IReadOnlySet<string> KeyLevelErrors = new HashSet<string>
    {
        // A key or credential problem fails every file the same way: stop once instead of an error per file.
        "KmsAuthenticationFailed", "KmsCredentialsFailed", "KmsConfigurationInvalid", "KmsKeyNotFound", "KmsRefused", "KmsClockSkew", "KmsInvalidParameter",
    };
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

    /// <summary>
    /// EKMS (default); Legacy: the KMS documentation sample's four-line AES-EAX format, for scripts built on it;
    /// AlibabaSdk / AlibabaSdkStream: an Alibaba Cloud Encryption SDK message (ASN.1, or the Java SDK's stream layout).
    /// </summary>
    [Parameter]
    [ValidateSet("EKMS", "Legacy", AlibabaSdkFormats.Asn1Name, AlibabaSdkFormats.StreamName)]
    public string Format { get; set; } = "EKMS";

    private bool Legacy => string.Equals(Format, "Legacy", StringComparison.OrdinalIgnoreCase);

    /// <summary>The Encryption SDK layout asked for, or null for EKMS and Legacy.</summary>
    private AlibabaSdk.AlibabaSdkLayout? SdkLayout => AlibabaSdkFormats.LayoutOf(Format);

    protected override IReadOnlySet<string> TerminatingErrorIds => KeyLevelErrors;

    protected override void BeginProcessing()
    {
        _context = ToContextOrStop(EncryptionContext);
        if (Legacy && _context.Count > 0)
            ThrowTerminatingError(new ErrorRecord(new ArgumentException("The legacy format has no encryption context; remove -EncryptionContext or use -Format EKMS."),
                "EnvelopeLegacyNoContext", ErrorCategory.InvalidArgument, EncryptionContext));
        if (Legacy && KeyId.Length > 1)
            ThrowTerminatingError(new ErrorRecord(new ArgumentException("The legacy format holds one wrapped key; give one -KeyId."),
                "EnvelopeLegacyOneKey", ErrorCategory.InvalidArgument, KeyId));
        if (SdkLayout is not null && AlibabaSdk.AlibabaSdkHeader.SerializeContext(_context).Length > AlibabaSdk.AlibabaSdkFormat.MaxContextBytes)
            ThrowTerminatingError(new ErrorRecord(new ArgumentException($"The Encryption SDK formats hold an encryption context of at most {AlibabaSdk.AlibabaSdkFormat.MaxContextBytes} serialized bytes."),
                "EnvelopeContextInvalid", ErrorCategory.InvalidArgument, EncryptionContext));
        if (KeyId.Length > EnvelopeFormat.DefaultMaxWrappedKeys)
            ThrowTerminatingError(new ErrorRecord(new ArgumentException(
                $"At most {EnvelopeFormat.DefaultMaxWrappedKeys} KMS keys can wrap one file (the most a reader accepts by default); {KeyId.Length} were given."),
                "EnvelopeTooManyKeys", ErrorCategory.InvalidArgument, KeyId));
        foreach (var key in KeyId) ModuleState.Current.RememberKey(key);
        BeginWriting();
        // Ask KMS for the data key while the pipeline starts delivering files, unless nothing may be written
        // (-WhatIf) or every file is to be confirmed first (-Confirm).
        bool whatIf = MyInvocation.BoundParameters.ContainsKey("WhatIf") ? ((SwitchParameter)MyInvocation.BoundParameters["WhatIf"]).IsPresent
            : LanguagePrimitives.IsTrue(GetVariableValue("WhatIfPreference"));
        if (!whatIf && !MyInvocation.BoundParameters.ContainsKey("Confirm")) Batcher.Prefetch(CancellationToken);
    }

    protected override void ProcessRecord()
    {
        foreach (var source in ResolveInputFiles())
        {
            string destination = DestinationFor(source, System.IO.Path.GetFileName(source) + EnvelopeFormat.FileExtension)!;
            if (IsAlreadyProtected(source))
            {
                _alreadyProtected++;
                WriteVerbose($"Skipping '{source}': it is already an envelope file.");
                continue;
            }
            if (!CheckDestinationFree(source, destination)) continue;
            if (RemoveSource && !CheckRemovable(source)) continue;
            string action = RemoveSource ? $"Encrypt to '{destination}', then remove the source" : $"Encrypt to '{destination}'";
            if (!ShouldProcess(source, action)) continue;
            WarnAboutLeftoverTempFiles(destination);
            bool remove = RemoveSource && ConfirmRemoval(source);
            long length = new FileInfo(source).Length;
            _ = Batcher; // created here, on the pipeline thread, where the KMS client may write verbose output or errors
            var work = new FileWorkQueue.WorkItem(source, length);
            // No read-ahead when the source is to be removed: that would widen the window in which a change to the
            // source, made after it was read, is lost with it.
            if (SdkLayout is null && !Legacy && !remove) Queue.StartWithReadAhead(work, (item, createOutput) => ReadAhead(item, destination, createOutput), (item, ahead, ct) => ProtectAsync(item, ahead, destination, remove, ct));
            else Queue.Start(work, (item, ct) => ProtectAsync(item, null, destination, remove, ct));
        }
    }

    protected override void EndProcessing()
    {
        EndWriting();
        if (_alreadyProtected > 0)
            WriteWarning($"Skipped {_alreadyProtected} file(s) that are already envelope files (EKMS, legacy or Encryption SDK).");
        if (_batcher is not null)
            WriteVerbose($"{_batcher.DataKeysGenerated} data key(s) generated for {Queue.CompletedCount} file(s).");
        WriteRetrySummary();
    }

    /// <summary>A .ekms file that already holds an envelope of a known format (by content) is not encrypted again.</summary>
    private static bool IsAlreadyProtected(string source)
        => source.EndsWith(EnvelopeFormat.FileExtension, StringComparison.OrdinalIgnoreCase)
            && LegacyFileOperations.DetectFormatOrUnknown(source) != EnvelopeFileFormat.Unknown;

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
            WriteError(ErrorMapper.ToErrorRecord(e, source));
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

    private DataKeyBatcher Batcher => _batcher ??= new DataKeyBatcher(
        new CircuitBreakingDataKeyProvider(new KmsDataKeyProvider(Clients, new KmsDataKeyProviderOptions { Trace = QueueVerbose })),
        BatchKeyIds, _context, DataKeyPerFile ? DataKeyReuseLimits.PerFile : DataKeyReuseLimits.Default);

    private IReadOnlyList<string>? _sdkArns;

    /// <summary>
    /// The Encryption SDK records each KMS key by ARN: -KeyId values that are ids or aliases are resolved once, with
    /// DescribeKey, on the pipeline thread. KMS is then asked with the ARNs, whose regions pick the endpoints, as the
    /// SDKs take the region from the ARN.
    /// </summary>
    private IReadOnlyList<string> BatchKeyIds
    {
        get
        {
            if (SdkLayout is null) return KeyId;
            try
            {
                _sdkArns ??= Run(ct => KmsKeyArn.ResolveAsync(Client, KeyId, ct));
            }
            catch (Exception e) when (e is KmsException or Credentials.CredentialsException)
            {
                ThrowTerminatingError(ErrorMapper.ToErrorRecord(e, KeyId));
            }
            if (_sdkArns!.Distinct(StringComparer.Ordinal).Count() != _sdkArns!.Count)
                ThrowTerminatingError(new ErrorRecord(new ArgumentException($"Two -KeyId values name the same KMS key ({string.Join(", ", _sdkArns!)}); an Encryption SDK message holds one data key per key."),
                    "EnvelopeDuplicateKeyId", ErrorCategory.InvalidArgument, KeyId));
            return _sdkArns!;
        }
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
        using var lease = await Batcher.AcquireAsync(item.Length, cancellationToken).ConfigureAwait(false);
        EnvelopeKms.Files.EnvelopeFileResult result = readAhead is { Output: { } output }
            ? await EnvelopeFileOperations.EncryptFileAsync(readAhead.Input, output, lease.Key, _context, null, item.Progress, cancellationToken).ConfigureAwait(false)
            : readAhead is not null
            ? await EnvelopeFileOperations.EncryptFileAsync(readAhead.Input, destination, lease.Key, _context, Force, null, item.Progress, cancellationToken).ConfigureAwait(false)
            : SdkLayout is { } layout
            ? await AlibabaSdkFileOperations.EncryptFileAsync(item.Source, destination, lease.Key, _sdkArns!, _context, layout, Force, item.Progress, cancellationToken).ConfigureAwait(false)
            : Legacy
            ? await LegacyFileOperations.EncryptFileAsync(item.Source, destination, lease.Key, Force, cancellationToken).ConfigureAwait(false)
            : await EnvelopeFileOperations.EncryptFileAsync(item.Source, destination, lease.Key, _context, Force, null, item.Progress, cancellationToken).ConfigureAwait(false);
        bool removed = false;
        if (removeSource)
        {
            // Only after the output on disk decrypts: a source is never removed before its copy is proven good.
            if (SdkLayout is not null) await AlibabaSdkFileOperations.VerifyFileAsync(destination, lease.Key, cancellationToken).ConfigureAwait(false);
            else if (Legacy) await LegacyFileOperations.VerifyFileAsync(destination, lease.Key, cancellationToken).ConfigureAwait(false);
            else await EnvelopeFileOperations.VerifyFileAsync(destination, lease.Key, cancellationToken).ConfigureAwait(false);
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
            Format = SdkLayout is { } sdk ? AlibabaSdkFormats.NameOf(sdk) : Legacy ? "Legacy" : "EKMS",
            Length = result.OutputLength,
            SourceRemoved = removed,
        };
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing); // first: stops and waits for the files in flight
        if (disposing) _batcher?.Dispose();
    }
}
