using System.Management.Automation;
using EnvelopeKms.Kms;
using EnvelopeKms.PowerShell.Infrastructure;
using EnvelopeKms.PowerShell.Errors;

namespace EnvelopeKms.PowerShell.Commands;

/// <summary>Gives a key an alias (CreateAlias): <c>New-KmsKey | New-KmsAlias -AliasName alias/Apollo/WorkKey</c>.</summary>
[Cmdlet(VerbsCommon.New, "KmsAlias", SupportsShouldProcess = true)]
[OutputType(typeof(AliasMetadata))]
public sealed class NewKmsAliasCommand : KmsCmdlet
{
    /// <summary>The alias, starting with alias/ (for example alias/Apollo/WorkKey).</summary>
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string AliasName { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(KmsKeyCompleter))]
    [ValidateNotNullOrEmpty]
    public string KeyId { get; set; } = "";

    protected override void ProcessRecord()
    {
        if (!ShouldProcess(AliasName, $"Create alias for KMS key {KeyId}")) return;
        if (!TryRun(AliasName, ct => OpenClient().CreateAliasAsync(AliasName, KeyId, ct))) return;
        ModuleState.Current.RememberAlias(AliasName, KeyId);
        WriteObject(new AliasMetadata { AliasName = AliasName, KeyId = KeyId });
    }
}

/// <summary>Points an existing alias at another key (UpdateAlias), for rotation by alias.</summary>
[Cmdlet(VerbsCommon.Set, "KmsAlias", SupportsShouldProcess = true)]
[OutputType(typeof(AliasMetadata))]
public sealed class SetKmsAliasCommand : KmsCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(KmsAliasCompleter))]
    [ValidateNotNullOrEmpty]
    public string AliasName { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1)]
    [ArgumentCompleter(typeof(KmsKeyCompleter))]
    [ValidateNotNullOrEmpty]
    public string KeyId { get; set; } = "";

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        if (!ShouldProcess(AliasName, $"Point alias at KMS key {KeyId}")) return;
        if (!TryRun(AliasName, ct => OpenClient().UpdateAliasAsync(AliasName, KeyId, ct))) return;
        ModuleState.Current.RememberAlias(AliasName, KeyId);
        if (PassThru) WriteObject(new AliasMetadata { AliasName = AliasName, KeyId = KeyId });
    }
}

/// <summary>Deletes an alias (DeleteAlias); the key itself is not touched.</summary>
[Cmdlet(VerbsCommon.Remove, "KmsAlias", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
public sealed class RemoveKmsAliasCommand : KmsCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(KmsAliasCompleter))]
    [ValidateNotNullOrEmpty]
    public string[] AliasName { get; set; } = [];

    protected override void ProcessRecord()
    {
        foreach (var alias in AliasName)
        {
            if (!ShouldProcess(alias, "Delete alias")) continue;
            if (TryRun(alias, ct => OpenClient().DeleteAliasAsync(alias, ct))) ModuleState.Current.KnownAliases.TryRemove(alias, out _);
        }
    }
}

/// <summary>Lists aliases (ListAliases), those of one key (ListAliasesByKeyId), or those matching a name pattern.</summary>
[Cmdlet(VerbsCommon.Get, "KmsAlias", DefaultParameterSetName = "Name")]
[OutputType(typeof(AliasMetadata))]
public sealed class GetKmsAliasCommand : KmsCmdlet
{
    [Parameter(Position = 0, ParameterSetName = "Name")]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(KmsAliasCompleter))]
    public string? AliasName { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = "KeyId", ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(KmsKeyCompleter))]
    [ValidateNotNullOrEmpty]
    public string KeyId { get; set; } = "";

    protected override void ProcessRecord()
    {
        List<AliasMetadata> aliases = [];
        bool byKey = ParameterSetName == "KeyId";
        if (!TryRun(byKey ? KeyId : "ListAliases", async ct => aliases = await KmsPaging.FetchAllAsync(
                byKey ? OpenClient().ListAllAliasesByKeyIdAsync(KeyId, cancellationToken: ct) : OpenClient().ListAllAliasesAsync(cancellationToken: ct), ct).ConfigureAwait(false)))
            return;
        var pattern = AliasName is null ? null : new WildcardPattern(AliasName, WildcardOptions.IgnoreCase);
        bool found = false;
        foreach (var alias in aliases)
        {
            ModuleState.Current.RememberAlias(alias.AliasName, alias.KeyId);
            if (pattern is not null && !pattern.IsMatch(alias.AliasName)) continue;
            found = true;
            WriteObject(alias);
        }
        if (!found && AliasName is not null && !WildcardPattern.ContainsWildcardCharacters(AliasName))
            WriteError(ErrorIds.KmsAliasNotFound.ToRecord(new ItemNotFoundException($"No KMS alias named '{AliasName}'."), AliasName));
    }
}
