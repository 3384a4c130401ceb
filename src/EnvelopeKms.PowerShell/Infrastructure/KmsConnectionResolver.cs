using System.Management.Automation;
using System.Net;
using EnvelopeKms.Credentials;
using EnvelopeKms.Kms;

namespace EnvelopeKms.PowerShell.Infrastructure;

/// <summary>The connection settings a cmdlet ends up with, and where each came from.</summary>
internal sealed class KmsConnectionSettings
{
    public string? Region { get; init; }
    public string? Endpoint { get; init; }
    public string? CaCertificatePath { get; init; }
    public bool AllowInsecureHttp { get; init; }
    public required ICredentialsProvider Credentials { get; init; }

    public KmsClient CreateClient()
    {
        KmsEndpoint endpoint;
        if (!string.IsNullOrEmpty(Endpoint)) endpoint = KmsEndpoint.FromUrl(Endpoint, Region, CaCertificatePath);
        else if (!string.IsNullOrEmpty(Region)) endpoint = KmsEndpoint.ForRegion(Region);
        else throw new KmsConfigurationException(
            "No KMS region or endpoint is set. Use -Region or -Endpoint, Connect-Kms, the ALIBABA_CLOUD_REGION_ID environment variable, or a profile with a region.");
        return new KmsClient(new KmsClientOptions { Endpoint = endpoint, Credentials = Credentials, AllowInsecureHttp = AllowInsecureHttp });
    }
}

/// <summary>Resolves bound parameters, Connect-Kms defaults, the environment and profile files into settings.</summary>
internal static class KmsConnectionResolver
{
    public static KmsConnectionSettings Resolve(string? region, string? endpoint, string? profileName, PSCredential? credential, KmsConnectionDefaults? defaults)
    {
        var chainOptions = new CredentialChainOptions
        {
            ProfileName = profileName ?? defaults?.ProfileName,
        };
        ICredentialsProvider credentials;
        var explicitCredential = credential ?? defaults?.Credential;
        if (explicitCredential is not null)
        {
            credentials = new StaticCredentialsProvider(new AlibabaCloudCredentials(
                explicitCredential.UserName, explicitCredential.GetNetworkCredential().Password), credential is not null ? "parameter" : "Connect-Kms");
        }
        else
        {
            credentials = CredentialChain.CreateDefault(chainOptions);
        }
        return new KmsConnectionSettings
        {
            Region = region ?? defaults?.Region ?? CredentialChain.ResolveRegion(chainOptions),
            Endpoint = endpoint ?? defaults?.Endpoint,
            CaCertificatePath = defaults?.CaCertificatePath,
            AllowInsecureHttp = defaults?.AllowInsecureHttp ?? false,
            Credentials = credentials,
        };
    }
}
