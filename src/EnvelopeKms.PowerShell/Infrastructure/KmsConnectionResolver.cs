using System.Management.Automation;
using EnvelopeKms.Kms;

namespace EnvelopeKms.PowerShell.Infrastructure;

/// <summary>
/// Merges a cmdlet's bound parameters with the Connect-Kms defaults; the core's factory then applies the
/// environment → profile files → credentials URI → instance metadata chain to whatever is still unset.
/// </summary>
internal static class KmsConnectionResolver
{
    public static KmsConnectionSettings Resolve(string? region, string? endpoint, string? profileName, PSCredential? credential, KmsConnectionDefaults? defaults)
    {
        var explicitCredential = credential ?? defaults?.Credential;
        // A profile named on the command line beats credentials set by Connect-Kms.
        if (credential is null && profileName is not null) explicitCredential = null;
        bool endpointFromDefaults = endpoint is null && defaults?.Endpoint is not null;
        return new KmsConnectionSettings
        {
            Region = region ?? defaults?.Region,
            Endpoint = endpoint ?? defaults?.Endpoint,
            CaCertificatePath = endpointFromDefaults ? defaults?.CaCertificatePath : null,
            AllowInsecureHttp = endpointFromDefaults && defaults!.AllowInsecureHttp,
            // The region endpoints come only from Connect-Kms, with its CA certificate and http opt-in, whatever
            // endpoint the cmdlet itself was given.
            RegionEndpoints = defaults?.RegionEndpoints,
            RegionEndpointCaCertificatePath = defaults?.RegionEndpoints is null ? null : defaults.CaCertificatePath,
            RegionEndpointAllowInsecureHttp = defaults?.RegionEndpoints is not null && defaults.AllowInsecureHttp,
            ProfileName = profileName ?? defaults?.ProfileName,
            AccessKeyId = explicitCredential?.UserName,
            AccessKeySecret = explicitCredential?.GetNetworkCredential().Password,
            Retry = defaults?.MaxAttempts is int attempts ? new KmsRetryOptions { MaxAttempts = attempts } : new KmsRetryOptions(),
        };
    }
}
