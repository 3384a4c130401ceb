using System.Collections;
using System.Management.Automation;
using EnvelopeKms.Kms;
using EnvelopeKms.PowerShell.Infrastructure;
using EnvelopeKms.PowerShell.Errors;
using EnvelopeKms.Cloud;

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
    /// <summary>Region id → endpoint, as given to -RegionEndpoint (empty when none).</summary>
    public System.Collections.Specialized.OrderedDictionary RegionEndpoint { get; init; } = new();
    public int? MaxAttempts { get; init; }

    internal static KmsConnectionInfo From(KmsConnectionDefaults d) => new()
    {
        Region = d.Region,
        Endpoint = d.Endpoint,
        ProfileName = d.ProfileName,
        AccessKeyId = d.Credential?.UserName,
        CaCertificatePath = d.CaCertificatePath,
        AllowInsecureHttp = d.AllowInsecureHttp,
        RegionEndpoint = ToOrdered(d.RegionEndpoints),
        MaxAttempts = d.MaxAttempts,
    };

    private static System.Collections.Specialized.OrderedDictionary ToOrdered(IReadOnlyDictionary<string, string>? map)
    {
        var result = new System.Collections.Specialized.OrderedDictionary(StringComparer.OrdinalIgnoreCase);
        foreach (var (region, url) in (map ?? new Dictionary<string, string>()).OrderBy(p => p.Key, StringComparer.Ordinal)) result.Add(region, url);
        return result;
    }
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

    /// <summary>
    /// Endpoints of regions, as a hashtable of region id → URL, e.g. @{ 'cn-shanghai' = 'https://kms-vpc.cn-shanghai.aliyuncs.com' }:
    /// where keys given as ARNs of those regions, and wrapped keys recorded in them, are sent (VPC endpoints, KMS
    /// instances, local servers). Other regions use https://kms.&lt;region&gt;.aliyuncs.com.
    /// </summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public Hashtable? RegionEndpoint { get; set; }

    /// <summary>A CA certificate (PEM) trusted for -Endpoint and the -RegionEndpoint endpoints only, for a KMS instance with a private CA.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? CaCertificatePath { get; set; }

    /// <summary>Allow plain http:// to a host that is not loopback, for -Endpoint and -RegionEndpoint. Off by default: credentials and keys would cross the network in clear.</summary>
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
        bool explicitEndpoint = Endpoint is not null || RegionEndpoint is not null;
        if (ca is not null && !explicitEndpoint)
            Fail(new ArgumentException("-CaCertificatePath applies to an explicit -Endpoint or -RegionEndpoint (a KMS instance); give one of them too."), CaCertificatePath);
        if (AllowInsecureHttp && !explicitEndpoint)
            Fail(new ArgumentException("-AllowInsecureHttp applies to an explicit http:// -Endpoint or -RegionEndpoint; give one of them too."), null);
        if (ca is not null && !File.Exists(ca))
            ThrowTerminatingError(ErrorIds.KmsCaCertificateNotFound.ToRecord(new FileNotFoundException($"Cannot find the CA certificate '{ca}'.", ca), ca));
        if (Endpoint is not null)
        {
            try
            {
                KmsEndpoint.FromUrl(Endpoint, Region, ca).EnsureTransportAllowed(AllowInsecureHttp);
            }
            catch (Exception e) when (e is KmsConfigurationException or ArgumentException or UriFormatException)
            {
                Fail(e, Endpoint);
            }
        }
        var regionEndpoints = RegionEndpoint is null ? null : ReadRegionEndpoints(RegionEndpoint, ca);
        var defaults = new KmsConnectionDefaults
        {
            Region = Region,
            Endpoint = Endpoint,
            ProfileName = ProfileName,
            Credential = Credential,
            CaCertificatePath = ca,
            AllowInsecureHttp = AllowInsecureHttp,
            RegionEndpoints = regionEndpoints,
            MaxAttempts = MyInvocation.BoundParameters.ContainsKey(nameof(MaxAttempts)) ? MaxAttempts : null,
        };
        ModuleState.Current.Connection = defaults;
        WriteVerbose($"KMS defaults set: endpoint {Endpoint ?? "(by region)"}, region {Region ?? "(from environment or profile)"}.");
        foreach (var (region, url) in regionEndpoints ?? new Dictionary<string, string>())
            WriteVerbose($"KMS endpoint for region {region}: {url}.");
        if (PassThru) WriteObject(KmsConnectionInfo.From(defaults));
    }

    /// <summary>
    /// Checks -RegionEndpoint as -Endpoint is checked (URL form, CA certificate only with https, plain http only to
    /// loopback unless -AllowInsecureHttp), with region ids as keys.
    /// </summary>
    private Dictionary<string, string> ReadRegionEndpoints(Hashtable table, string? ca)
    {
        var result = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (DictionaryEntry entry in table)
        {
            string region = entry.Key as string ?? LanguagePrimitives.ConvertTo<string>(entry.Key);
            if (!RegionIds.IsValid(region))
                Fail(new ArgumentException($"-RegionEndpoint: '{region}' is not a region id such as cn-shanghai (lower-case letters and digits, separated by '-')."), table);
            if (entry.Value is not string url || string.IsNullOrWhiteSpace(url))
            {
                Fail(new ArgumentException($"-RegionEndpoint: the endpoint of '{region}' must be a URL string such as 'https://kms-vpc.{region}.aliyuncs.com'."), table);
                continue; // not reached
            }
            if (Endpoint is not null && Region is not null && string.Equals(region, Region, StringComparison.OrdinalIgnoreCase))
                Fail(new ArgumentException($"-RegionEndpoint names the region '{region}', whose endpoint -Endpoint already gives; give it once."), table);
            try
            {
                KmsEndpoint.FromUrl(url, region, ca).EnsureTransportAllowed(AllowInsecureHttp);
            }
            catch (Exception e) when (e is KmsConfigurationException or ArgumentException or UriFormatException)
            {
                Fail(new ArgumentException($"-RegionEndpoint: the endpoint of '{region}' is not usable: {e.Message}", e), table);
            }
            if (!result.TryAdd(region, url.Trim()))
                Fail(new ArgumentException($"-RegionEndpoint names the region '{region}' more than once."), table);
        }
        return result;
    }

    private void Fail(Exception e, object? target)
        => ThrowTerminatingError(ErrorIds.KmsConfigurationInvalid.ToRecord(e, target));
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
