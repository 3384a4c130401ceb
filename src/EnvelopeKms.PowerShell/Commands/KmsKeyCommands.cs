using System.Collections;
using System.Management.Automation;
using EnvelopeKms.Kms;
using EnvelopeKms.PowerShell.Infrastructure;

using EnvelopeKms.PowerShell.Errors;

namespace EnvelopeKms.PowerShell.Commands;

/// <summary>Creates a KMS key (CreateKey).</summary>
[Cmdlet(VerbsCommon.New, "KmsKey", SupportsShouldProcess = true)]
[OutputType(typeof(KeyMetadata))]
public sealed class NewKmsKeyCommand : KmsCmdlet
{
    [Parameter(Position = 0)]
    public string? Description { get; set; }

    /// <summary>Aliyun_AES_256 (default), Aliyun_SM4, or an asymmetric spec.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string KeySpec { get; set; } = "Aliyun_AES_256";

    [Parameter]
    [ValidateSet("ENCRYPT/DECRYPT", "SIGN/VERIFY")]
    public string KeyUsage { get; set; } = "ENCRYPT/DECRYPT";

    [Parameter]
    [ValidateSet("SOFTWARE", "HSM")]
    public string? ProtectionLevel { get; set; }

    /// <summary>Rotate the key automatically every -RotationInterval (for example 365d).</summary>
    [Parameter]
    public string? RotationInterval { get; set; }

    [Parameter]
    public Hashtable? Tag { get; set; }

    /// <summary>
    /// The KMS instance (KMS 3.0, <c>kst-…</c>) to create the key in. The call still goes to the shared gateway
    /// (kms.&lt;region&gt;.aliyuncs.com or its VPC endpoint), so the same RAM policies and endpoints apply.
    /// </summary>
    [Parameter]
    [ValidatePattern("^kst-[A-Za-z0-9]+$")]
    public string? DKMSInstanceId { get; set; }

    protected override void EndProcessing()
    {
        if (!ShouldProcess(Description ?? "new key", $"Create KMS key ({KeySpec})")) return;
        var request = new CreateKeyRequest
        {
            Description = Description,
            KeySpec = KeySpec,
            KeyUsage = KeyUsage,
            ProtectionLevel = ProtectionLevel,
            EnableAutomaticRotation = RotationInterval is null ? null : true,
            RotationInterval = RotationInterval,
            DKMSInstanceId = DKMSInstanceId,
            Tags = Tag?.Cast<DictionaryEntry>().ToDictionary(e => LanguagePrimitives.ConvertTo<string>(e.Key), e => LanguagePrimitives.ConvertTo<string>(e.Value)),
        };
        KeyMetadata? key = null;
        if (TryRun(Description ?? "new key", async ct => key = await OpenClient().CreateKeyAsync(request, ct).ConfigureAwait(false))) Emit(key!);
    }
}

/// <summary>Gets one KMS key (DescribeKey), or every key of the account (ListKeys, then DescribeKey each).</summary>
[Cmdlet(VerbsCommon.Get, "KmsKey")]
[OutputType(typeof(KeyMetadata))]
public sealed class GetKmsKeyCommand : KmsCmdlet
{
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(KmsKeyCompleter))]
    [ValidateNotNullOrEmpty]
    public string[]? KeyId { get; set; }

    protected override void ProcessRecord()
    {
        if (KeyId is null)
        {
            List<KeySummary> keys = [];
            if (!TryRun("ListKeys", async ct => keys = await KmsPaging.FetchAllAsync(OpenClient().ListAllKeysAsync(cancellationToken: ct), ct).ConfigureAwait(false))) return;
            foreach (var summary in keys) Describe(summary.KeyId);
            return;
        }
        foreach (var id in KeyId) Describe(id);
    }

    private void Describe(string id)
    {
        KeyMetadata? key = null;
        if (TryRun(id, async ct => key = await OpenClient().DescribeKeyAsync(id, ct).ConfigureAwait(false))) Emit(key!);
    }
}

[Cmdlet(VerbsLifecycle.Enable, "KmsKey", SupportsShouldProcess = true)]
[OutputType(typeof(KeyMetadata))]
public sealed class EnableKmsKeyCommand : KmsCmdlet
{
    /// <summary>The keys to change (key ids, aliases or ARNs).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(KmsKeyCompleter))]
    [ValidateNotNullOrEmpty]
    public string[] KeyId { get; set; } = [];

    /// <summary>Write the key's metadata after the change.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
        => ChangeKeyStates(KeyId, "Enable KMS key", PassThru, (id, ct) => OpenClient().EnableKeyAsync(id, ct));
}

[Cmdlet(VerbsLifecycle.Disable, "KmsKey", SupportsShouldProcess = true)]
[OutputType(typeof(KeyMetadata))]
public sealed class DisableKmsKeyCommand : KmsCmdlet
{
    /// <summary>The keys to change (key ids, aliases or ARNs).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(KmsKeyCompleter))]
    [ValidateNotNullOrEmpty]
    public string[] KeyId { get; set; } = [];

    /// <summary>Write the key's metadata after the change.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
        => ChangeKeyStates(KeyId, "Disable KMS key", PassThru, (id, ct) => OpenClient().DisableKeyAsync(id, ct));
}

/// <summary>Schedules a key's deletion after a pending window (ScheduleKeyDeletion); Restore-KmsKey cancels it.</summary>
[Cmdlet(VerbsCommon.Remove, "KmsKey", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(KeyMetadata))]
public sealed class RemoveKmsKeyCommand : KmsCmdlet
{
    /// <summary>The keys to change (key ids, aliases or ARNs).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(KmsKeyCompleter))]
    [ValidateNotNullOrEmpty]
    public string[] KeyId { get; set; } = [];

    /// <summary>Write the key's metadata after the change.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    /// <summary>Days before the key is deleted for good (7 to 366). Files encrypted under it become unreadable then.</summary>
    [Parameter]
    [ValidateRange(7, 366)]
    public int PendingWindowInDays { get; set; } = 30;

    protected override void ProcessRecord()
        => ChangeKeyStates(KeyId, $"Schedule deletion of KMS key in {PendingWindowInDays} days", PassThru, (id, ct) => OpenClient().ScheduleKeyDeletionAsync(id, PendingWindowInDays, ct));
}

/// <summary>Cancels a key's scheduled deletion (CancelKeyDeletion).</summary>
[Cmdlet(VerbsData.Restore, "KmsKey", SupportsShouldProcess = true)]
[OutputType(typeof(KeyMetadata))]
public sealed class RestoreKmsKeyCommand : KmsCmdlet
{
    /// <summary>The keys to change (key ids, aliases or ARNs).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(KmsKeyCompleter))]
    [ValidateNotNullOrEmpty]
    public string[] KeyId { get; set; } = [];

    /// <summary>Write the key's metadata after the change.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
        => ChangeKeyStates(KeyId, "Cancel deletion of KMS key", PassThru, (id, ct) => OpenClient().CancelKeyDeletionAsync(id, ct));
}
