using System.Collections;
using System.Collections.Concurrent;
using System.Management.Automation;
using System.Security.Cryptography;
using EnvelopeKms.Files;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using EnvelopeKms.Kms;
using EnvelopeKms.PowerShell.Infrastructure;
using EnvelopeKms.PowerShell.Errors;

namespace EnvelopeKms.PowerShell.Commands;

/// <summary>
/// Converts envelope files between EKMS, the documentation sample's legacy format and the Alibaba Cloud Encryption
/// SDK messages, under a new data key, without writing plaintext to disk. In place unless -Destination is given.
/// </summary>
[Cmdlet(VerbsData.Convert, "EnvelopeFile", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = LiteralPathSet)]
[OutputType(typeof(EnvelopeFileResult))]
public sealed class ConvertEnvelopeFileCommand : KmsFileCmdlet
{
    private OutputPaths? _outputs;
    private FileBatch? _batch;
    /// <summary>Marks (in <see cref="Exception.Data"/>) a failure to get the new data key, as opposed to reading a source.</summary>
    private const string NewKeyMarker = "EnvelopeKms.NewDataKey";
    private Keys.EncryptionContext _required = Keys.EncryptionContext.Empty;
    private FileFormat _target = FileFormats.Ekms;
    private CachingDataKeyProvider? _unwrapper;
    private IReadOnlyList<string>? _sdkArns;
    private KmsRegionalClients? _clients;
    private readonly ConcurrentDictionary<string, DataKeyBatcher> _batchers = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<DataKey, Lazy<Task>> _confirmed = new();

    /// <summary>The format to convert to: EKMS, Legacy, AlibabaSdk (ASN.1 message) or AlibabaSdkStream.</summary>
    [Parameter(Mandatory = true)]
    [ValidateSet(FileFormats.EkmsName, FileFormats.LegacyName, FileFormats.AlibabaSdkName, FileFormats.AlibabaSdkStreamName)]
    public string To { get; set; } = FileFormats.EkmsName;

    /// <summary>KMS keys (key id, alias/... or ARN) that wrap the new data key; the first generates it. Legacy: one key.</summary>
    [Parameter(Mandatory = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(KmsKeyCompleter))]
    public string[] KeyId { get; set; } = [];

    /// <summary>Pairs that must be in each source file's encryption context, with these values (the context itself is carried over).</summary>
    [Parameter]
    [Alias("Context")]
    public Hashtable? EncryptionContext { get; set; }

    /// <summary>Only these KMS keys (ids, aliases or ARNs) may decrypt the sources.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(KmsKeyCompleter))]
    public string[]? AllowedKeyId { get; set; }

    /// <summary>A folder for the outputs, or a file name when there is one input. Default: in place.</summary>
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

    // Sources may be wrapped under different keys, so reading one fails only that file; the new data key is shared
    // by every file, so failing to get it fails them all alike.
    private static PipelineEnd PipelineEndFor(Exception error) => error.Data.Contains(NewKeyMarker) ? PipelineEnd.SharedDataKey : PipelineEnd.SharedSession;

    protected override void Begin()
    {
        _required = ToContextOrStop(EncryptionContext);
        _target = FileFormats.FromName(To);
        try
        {
            // The context is the source's, carried over; a context the target cannot hold is that file's own error.
            _target.CheckEncryption(KeyId.Length, Keys.EncryptionContext.Empty);
        }
        catch (FormatRuleException e)
        {
            ThrowTerminatingError(ErrorMapper.ToErrorRecord(e, KeyId));
        }
        foreach (var key in KeyId) ModuleState.Current.RememberKey(key);
        _outputs = new OutputPaths(this, Destination);
        _batch = new FileBatch(this, Kms, ThrottleLimit, PassThru, PipelineEndFor, EnvelopeFileResults.Report(this), tellReadFromWrite: true, CancellationToken);
    }

    protected override void ProcessRecord()
    {
        foreach (var source in ResolveInputFiles())
        {
            var format = FileFormats.TryDetect(source);
            if (format is null)
            {
                var e = new EnvelopeException(EnvelopeError.NotEnvelope, $"'{source}' is not an envelope file of a format this module reads (EKMS, legacy, Encryption SDK).");
                WriteError(ErrorIds.EnvelopeNotRecognized.ToRecord(e, source));
                continue;
            }
            if (format == _target)
            {
                string hint = format == FileFormats.Ekms ? " To change the KMS keys of an EKMS file, use Update-EnvelopeFileKey." : "";
                WriteError(ErrorIds.EnvelopeConvertSameFormat.ToRecord(new InvalidOperationException($"'{source}' is already in the {format.Name} format; nothing to convert.{hint}"), source));
                continue;
            }
            string destination = !_outputs!.Given ? source : _outputs.For(source, System.IO.Path.GetFileName(source), CancelWork)!;
            bool inPlace = string.Equals(System.IO.Path.GetFullPath(destination), source, OperatingSystem.IsLinux() ? StringComparison.Ordinal : StringComparison.OrdinalIgnoreCase);
            if (!inPlace && !Force && File.Exists(destination))
            {
                _batch!.Refuse(source, new DestinationExistsException(destination));
                continue;
            }
            string from = format.Name, to = _target.Name;
            if (!ShouldProcess(source, inPlace ? $"Convert from {from} to {to} in place" : $"Convert from {from} to {to} into '{destination}'")) continue;
            _outputs.WarnAboutLeftoverTempFiles(destination);
            _unwrapper ??= Kms.CreateUnwrappingKeyProvider(AllowedKeyId);
            if (_target.RecordsKeyArns) ResolveSdkArns();
            _clients = Kms.OpenRegional(); // made here, on the pipeline thread
            _batch!.Start(new FileWorkQueue.WorkItem(source, new FileInfo(source).Length), (item, ct) => ConvertAsync(item, format, destination, ct));
        }
    }

    protected override void EndProcessing()
    {
        _batch!.End();
        Input.WriteSkippedDirectorySummary();
        Kms.WriteRetrySummary();
    }

    /// <summary>The Encryption SDK records keys by ARN: ids and aliases are resolved once, on the pipeline thread.</summary>
    private void ResolveSdkArns()
    {
        try
        {
            _sdkArns ??= Run(ct => KmsKeyArnResolver.ResolveAsync(Kms.Open(), KeyId, ct));
        }
        catch (Exception e) when (e is KmsException or Credentials.CredentialsException)
        {
            ThrowTerminatingError(ErrorMapper.ToErrorRecord(e, KeyId));
        }
    }

    /// <summary>One batcher (one GenerateDataKey per batch) per distinct encryption context carried over from the sources.</summary>
    private Task<DataKeyLease> AcquireKeyAsync(Keys.EncryptionContext context, long length, CancellationToken cancellationToken)
    {
        string id = context.ToKmsJson() ?? "";
        var batcher = _batchers.GetOrAdd(id, _ => new DataKeyBatcher(
            new CircuitBreakingDataKeyProvider(new KmsDataKeyProvider(_clients!, new KmsDataKeyProviderOptions { Trace = Kms.QueueVerbose })),
            _sdkArns ?? KeyId, context, DataKeyReuseLimits.Default));
        return MarkFailures(batcher.AcquireAsync(length, cancellationToken));

        static async Task<DataKeyLease> MarkFailures(Task<DataKeyLease> acquiring)
        {
            try { return await acquiring.ConfigureAwait(false); }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                e.Data[NewKeyMarker] = true;
                throw;
            }
        }
    }

    /// <summary>
    /// Before a file is replaced in place: KMS must unwrap the new data key (once per data key), so that a key the
    /// caller may encrypt with but not decrypt with cannot leave them with a file they cannot open.
    /// </summary>
    private Task ConfirmNewKeyAsync(DataKey key, Keys.EncryptionContext context, CancellationToken cancellationToken)
        => _confirmed.GetOrAdd(key, k => new Lazy<Task>(async () =>
        {
            using var provider = Kms.CreateUnwrappingKeyProvider(null); // the clients exist: made on the pipeline thread
            using var unwrapped = await provider.DecryptDataKeyAsync(k.WrappedKeys, context, cancellationToken).ConfigureAwait(false);
            if (!CryptographicOperations.FixedTimeEquals(unwrapped.Plaintext, k.Plaintext))
                throw new KeyProviderException(KeyProviderError.InvalidDataKey, "KMS unwrapped the new data key to different bytes; the source was left as it was.");
        })).Value;

    private async Task<object?> ConvertAsync(FileWorkQueue.WorkItem item, FileFormat format, string destination, CancellationToken cancellationToken)
    {
        var result = await EnvelopeConverter.ConvertFileAsync(item.Source, format.Id, destination, _target.Id, _unwrapper!, _required,
            AcquireKeyAsync, _sdkArns, ConfirmNewKeyAsync, Force, cancellationToken).ConfigureAwait(false);
        var entry = result.NewWrappedKeys[0];
        return new EnvelopeFileResult
        {
            Operation = "Convert",
            Path = result.Destination,
            Source = result.Source,
            KeyId = entry.KeyId,
            Region = entry.Region.Length == 0 ? null : entry.Region,
            Format = _target.Name,
            Length = result.OutputLength,
        };
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            CancelWork();
            _batch?.Dispose(); // first: waits for the files in flight
            _unwrapper?.Dispose();
            foreach (var batcher in _batchers.Values) batcher.Dispose();
        }
        base.Dispose(disposing);
    }
}
