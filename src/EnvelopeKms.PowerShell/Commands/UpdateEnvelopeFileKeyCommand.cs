using System.Collections;
using System.Management.Automation;
using EnvelopeKms.Files;
using EnvelopeKms.Format;
using EnvelopeKms.Keys;
using EnvelopeKms.PowerShell.Infrastructure;
using EnvelopeKms.PowerShell.Errors;
using EnvelopeKms.Cloud;

namespace EnvelopeKms.PowerShell.Commands;

/// <summary>
/// Adds KMS keys to, removes them from, or replaces the KMS keys of existing envelope files by rewriting only the
/// header (docs/format.md §12.5): the body is neither read nor re-encrypted, so the cost does not depend on the size.
/// </summary>
[Cmdlet(VerbsData.Update, "EnvelopeFileKey", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = LiteralPathSet)]
[OutputType(typeof(EnvelopeFileKeyUpdate))]
public sealed class UpdateEnvelopeFileKeyCommand : KmsCmdlet
{
    private const string PathSet = FileInput.PathSet;
    private const string LiteralPathSet = FileInput.LiteralPathSet;
    private const string ReplacePathSet = "ReplacePath";
    private const string ReplaceLiteralPathSet = "ReplaceLiteralPath";
    private Keys.EncryptionContext _required = Keys.EncryptionContext.Empty;
    private EnvelopeKeyChange _change = new();
    private CachingDataKeyProvider? _keys;
    private EnvelopeKeyUpdater? _updater;
    private FileBatch? _batch;
    private FileInput? _input;

    /// <summary>Files to update; wildcards allowed.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = ReplacePathSet, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = [];

    /// <summary>Files to update, taken exactly as written.</summary>
    [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, ValueFromPipelineByPropertyName = true)]
    [Parameter(Mandatory = true, ParameterSetName = ReplaceLiteralPathSet, ValueFromPipelineByPropertyName = true)]
    [Alias("PSPath", "LP")]
    [ValidateNotNullOrEmpty]
    public string[] LiteralPath { get; set; } = [];

    /// <summary>KMS keys to add: the file's data key is wrapped under each (KMS Encrypt).</summary>
    [Parameter(ParameterSetName = PathSet)]
    [Parameter(ParameterSetName = LiteralPathSet)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(KmsKeyCompleter))]
    public string[]? AddKeyId { get; set; }

    /// <summary>KMS keys whose wrapped copies are removed from the files.</summary>
    [Parameter(ParameterSetName = PathSet)]
    [Parameter(ParameterSetName = LiteralPathSet)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(KmsKeyCompleter))]
    public string[]? RemoveKeyId { get; set; }

    /// <summary>The complete new set of KMS keys: entries for keys already present are kept, the others added, the rest removed.</summary>
    [Parameter(Mandatory = true, ParameterSetName = ReplacePathSet)]
    [Parameter(Mandatory = true, ParameterSetName = ReplaceLiteralPathSet)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(KmsKeyCompleter))]
    public string[] KeyId { get; set; } = [];

    /// <summary>Pairs that must be in each file's encryption context, with these values.</summary>
    [Parameter]
    [Alias("Context")]
    public Hashtable? EncryptionContext { get; set; }

    /// <summary>Only these KMS keys may unwrap the files' data keys.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(KmsKeyCompleter))]
    public string[]? AllowedKeyId { get; set; }

    /// <summary>Write a result object for each file.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    /// <summary>Files updated at once.</summary>
    [Parameter]
    [ValidateRange(1, 256)]
    public int ThrottleLimit { get; set; } = Math.Max(2, Environment.ProcessorCount * 2);

    // -KeyId decides (the parameter set of piped paths is only resolved once the first record binds).
    private bool Replacing => MyInvocation.BoundParameters.ContainsKey(nameof(KeyId));
    private bool Literal => ParameterSetName is LiteralPathSet or ReplaceLiteralPathSet;

    protected override void Begin()
    {
        _required = ToContextOrStop(EncryptionContext);
        _change = Replacing
            ? new EnvelopeKeyChange { Replace = KeyId }
            : new EnvelopeKeyChange { Add = AddKeyId ?? [], Remove = RemoveKeyId ?? [] };
        if (!Replacing && _change.Add.Count == 0 && _change.Remove.Count == 0)
        {
            ThrowTerminatingError(ErrorIds.EnvelopeKeyChangeMissing.ToRecord(new ArgumentException("Give -AddKeyId, -RemoveKeyId (or both), or the complete new set with -KeyId."), null));
        }
        var all = _change.Add.Concat(_change.Remove).Concat(_change.Replace ?? []).ToList();
        if (all.Count > EnvelopeFormat.MaxWrappedKeysHardLimit)
        {
            ThrowTerminatingError(ErrorIds.EnvelopeTooManyKeys.ToRecord(new ArgumentException($"At most {EnvelopeFormat.MaxWrappedKeysHardLimit} KMS keys can wrap one file."), all));
        }
        foreach (var reference in all)
        {
            try { Cloud.KmsKeyReference.Parse(reference); }
            catch (ArgumentException e)
            {
                ThrowTerminatingError(ErrorIds.EnvelopeInvalidArgument.ToRecord(e, reference));
            }
            ModuleState.Current.RememberKey(reference);
        }
        _input = new FileInput(this);
        // Files have their own wrapped keys, so only credential, clock and configuration problems fail them all.
        _batch = new FileBatch(this, Kms, ThrottleLimit, PassThru, _ => PipelineEnd.SharedSession, Report, tellReadFromWrite: false, CancellationToken);
    }

    protected override void ProcessRecord()
    {
        foreach (var file in _input!.Resolve(Literal ? LiteralPath : Path, Literal))
        {
            if (!ShouldProcess(file, Describe())) continue;
            // Created on the first file that is really processed: -WhatIf makes no KMS client and no call.
            _keys ??= Kms.CreateUnwrappingKeyProvider(AllowedKeyId);
            // New entries are wrapped at the endpoint of each key's region (a DR key's ARN names its region).
            _updater ??= new EnvelopeKeyUpdater(_keys, new EnvelopeKms.Kms.KmsDataKeyProvider(Kms.OpenRegional(), new EnvelopeKms.Kms.KmsDataKeyProviderOptions { Trace = Kms.QueueVerbose }), _change) { RequiredContext = _required };
            var updater = _updater;
            _batch!.Start(new FileWorkQueue.WorkItem(file, 0), async (item, ct) => await updater.UpdateFileAsync(item.Source, ct).ConfigureAwait(false));
        }
    }

    protected override void EndProcessing()
    {
        _batch!.End();
        _input!.WriteSkippedDirectorySummary();
        Kms.WriteRetrySummary();
    }

    private string Describe()
    {
        if (_change.Replace is { } set) return $"Replace the KMS keys with {string.Join(", ", set)} (header only)";
        var parts = new List<string>();
        if (_change.Add.Count > 0) parts.Add($"add KMS key {string.Join(", ", _change.Add)}");
        if (_change.Remove.Count > 0) parts.Add($"remove KMS key {string.Join(", ", _change.Remove)}");
        string text = string.Join("; ", parts) + " (header only)";
        return char.ToUpperInvariant(text[0]) + text[1..];
    }

    /// <summary>Reports one updated file (verbose, warnings) and returns its -PassThru object.</summary>
    private object? Report(object completed)
    {
        var result = (EnvelopeKeyUpdateResult)completed;
        foreach (var key in result.NewKeys) ModuleState.Current.RememberKey(key.KeyId);
        if (result.RepairedSlotProblem is { } problem) WriteWarning($"'{result.Path}': {problem} Both slots were rewritten.");
        if (!result.Changed)
            WriteVerbose($"'{result.Path}' already has these keys ({string.Join(", ", result.NewKeys.Select(k => k.KeyId))}); not changed.");
        else if (result.Rewritten)
        {
            string why = result.OldVersion == EnvelopeFormat.Version1 ? "converted from format v1 to v2" : "the key list outgrew the header slots";
            WriteVerbose($"'{result.Path}': {why}, so the whole file was rewritten (temp file, body bytes copied as they are, rename): "
                + $"keys {string.Join(", ", result.NewKeys.Select(k => k.KeyId))}, generation {result.Generation}, slot size {result.SlotSize}.");
        }
        else
            WriteVerbose($"'{result.Path}': header updated in place: keys {string.Join(", ", result.NewKeys.Select(k => k.KeyId))}, generation {result.Generation}.");
        return EnvelopeFileKeyUpdate.From(result);
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
