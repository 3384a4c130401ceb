using System.Management.Automation;
using EnvelopeKms.Kms;
using EnvelopeKms.PowerShell.Infrastructure;

namespace EnvelopeKms.PowerShell.Commands;

/// <summary>What Get-KmsConnection shows: the session defaults, never a secret.</summary>
public sealed class KmsConnectionInfo
{
    public string? Region { get; init; }
    public string? Endpoint { get; init; }
    public string? ProfileName { get; init; }
    public string? AccessKeyId { get; init; }
    public string? CaCertificatePath { get; init; }
    public bool AllowInsecureHttp { get; init; }
    public int? MaxAttempts { get; init; }

    internal static KmsConnectionInfo From(KmsConnectionDefaults d) => new()
    {
        Region = d.Region,
        Endpoint = d.Endpoint,
        ProfileName = d.ProfileName,
        AccessKeyId = d.Credential?.UserName,
        CaCertificatePath = d.CaCertificatePath,
        AllowInsecureHttp = d.AllowInsecureHttp,
        MaxAttempts = d.MaxAttempts,
    };
}

/// <summary>
/// Sets this session's KMS defaults (region, endpoint, profile, credentials) for every KMS cmdlet. Parameters given
/// to a cmdlet still win; without Connect-Kms the environment, profile files and instance metadata are used.
/// </summary>
[Cmdlet(VerbsCommunications.Connect, "Kms")]
[OutputType(typeof(KmsConnectionInfo))]
public sealed class ConnectKmsCommand : EnvelopeCmdlet
{
    [Parameter(Position = 0)]
    [ValidateNotNullOrEmpty]
    public string? Region { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Endpoint { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? ProfileName { get; set; }

    [Parameter]
    [Credential]
    public PSCredential? Credential { get; set; }

    /// <summary>A CA certificate (PEM) trusted for -Endpoint only, for a KMS instance with a private CA.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? CaCertificatePath { get; set; }

    /// <summary>Allow plain http:// to a host that is not loopback. Off by default: credentials and keys would cross the network in clear.</summary>
    [Parameter]
    public SwitchParameter AllowInsecureHttp { get; set; }

    /// <summary>
    /// Tries per KMS call, the first included (default 5). Throttled, 5xx, timed-out and dropped calls are retried with
    /// exponential backoff and full jitter (200 ms base, 10 s cap). Raise it for large batches against a heavily
    /// throttled account (docs/reliability.md); every retry of a dead KMS costs time, so keep it modest otherwise.
    /// </summary>
    [Parameter]
    [ValidateRange(1, 100)]
    public int MaxAttempts { get; set; } = 5;

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void EndProcessing()
    {
        string? ca = CaCertificatePath is null ? null : SessionState.Path.GetUnresolvedProviderPathFromPSPath(CaCertificatePath);
        if (ca is not null && Endpoint is null)
            ThrowTerminatingError(new ErrorRecord(new ArgumentException("-CaCertificatePath applies to an explicit -Endpoint (a KMS instance); give -Endpoint too."),
                "KmsConfigurationInvalid", ErrorCategory.InvalidArgument, CaCertificatePath));
        if (AllowInsecureHttp && Endpoint is null)
            ThrowTerminatingError(new ErrorRecord(new ArgumentException("-AllowInsecureHttp applies to an explicit http:// -Endpoint; give -Endpoint too."),
                "KmsConfigurationInvalid", ErrorCategory.InvalidArgument, null));
        if (ca is not null && !File.Exists(ca))
            ThrowTerminatingError(new ErrorRecord(new FileNotFoundException($"Cannot find the CA certificate '{ca}'.", ca), "KmsCaCertificateNotFound", ErrorCategory.ObjectNotFound, ca));
        if (Endpoint is not null)
        {
            try
            {
                KmsEndpoint.FromUrl(Endpoint, Region, ca).EnsureTransportAllowed(AllowInsecureHttp);
            }
            catch (Exception e) when (e is KmsConfigurationException or ArgumentException or UriFormatException)
            {
                ThrowTerminatingError(new ErrorRecord(e, "KmsConfigurationInvalid", ErrorCategory.InvalidArgument, Endpoint));
            }
        }
        var defaults = new KmsConnectionDefaults
        {
            Region = Region,
            Endpoint = Endpoint,
            ProfileName = ProfileName,
            Credential = Credential,
            CaCertificatePath = ca,
            AllowInsecureHttp = AllowInsecureHttp,
            MaxAttempts = MyInvocation.BoundParameters.ContainsKey(nameof(MaxAttempts)) ? MaxAttempts : null,
        };
        ModuleState.Current.Connection = defaults;
        WriteVerbose($"KMS defaults set: endpoint {Endpoint ?? "(by region)"}, region {Region ?? "(from environment or profile)"}.");
        if (PassThru) WriteObject(KmsConnectionInfo.From(defaults));
    }
}

/// <summary>Clears the defaults Connect-Kms set.</summary>
[Cmdlet(VerbsCommunications.Disconnect, "Kms")]
public sealed class DisconnectKmsCommand : EnvelopeCmdlet
{
    protected override void EndProcessing() => ModuleState.Current.Connection = null;
}

/// <summary>Shows the defaults Connect-Kms set in this session (no secrets).</summary>
[Cmdlet(VerbsCommon.Get, "KmsConnection")]
[OutputType(typeof(KmsConnectionInfo))]
public sealed class GetKmsConnectionCommand : EnvelopeCmdlet
{
    protected override void EndProcessing()
    {
        if (ModuleState.Current.Connection is { } defaults) WriteObject(KmsConnectionInfo.From(defaults));
    }
}
