using EnvelopeKms.Credentials;

namespace EnvelopeKms.Kms;

/// <summary>What a cmdlet knows about where and as whom to call KMS; everything is optional.</summary>
public sealed class KmsConnectionSettings
{
    /// <summary>Region id; else the profile's region, else <c>ALIBABA_CLOUD_REGION_ID</c>.</summary>
    public string? Region { get; init; }

    /// <summary>An explicit endpoint URL or host (KMS instance, local server); overrides the regional endpoint.</summary>
    public string? Endpoint { get; init; }

    /// <summary>Use <c>kms-vpc.&lt;region&gt;.aliyuncs.com</c>.</summary>
    public bool UseVpcEndpoint { get; init; }

    /// <summary>CA certificate trusted for the explicit endpoint only.</summary>
    public string? CaCertificatePath { get; init; }

    public bool AllowInsecureHttp { get; init; }

    /// <summary>Explicit AccessKey; with it the chain is not consulted.</summary>
    public string? AccessKeyId { get; init; }

    public string? AccessKeySecret { get; init; }

    public string? SecurityToken { get; init; }

    /// <summary>A named profile (aliyun CLI config.json, then the ini credentials file).</summary>
    public string? ProfileName { get; init; }

    /// <summary>A ready-made credentials source; overrides everything above about credentials.</summary>
    public ICredentialsProvider? Credentials { get; init; }

    public KmsSignatureVersion SignatureVersion { get; init; } = KmsSignatureVersion.V3;

    public KmsRetryOptions Retry { get; init; } = new();

    public TimeSpan? AttemptTimeout { get; init; }

    /// <summary>Where the credential sources look (files, environment, metadata, STS); defaults to the real ones.</summary>
    public CredentialResolutionOptions? CredentialOptions { get; init; }
}

/// <summary>Builds a <see cref="KmsClient"/> from cmdlet-level settings: endpoint rules plus the credential chain.</summary>
public static class KmsClientFactory
{
    public static KmsClient Create(KmsConnectionSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var credentialOptions = settings.CredentialOptions ?? new CredentialResolutionOptions();
        if (settings.ProfileName is not null)
        {
            credentialOptions = new CredentialResolutionOptions
            {
                GetEnvironmentVariable = credentialOptions.GetEnvironmentVariable,
                HomeDirectory = credentialOptions.HomeDirectory,
                CliConfigPath = credentialOptions.CliConfigPath,
                CredentialsFilePath = credentialOptions.CredentialsFilePath,
                ProfileName = settings.ProfileName,
                EcsMetadataBaseUri = credentialOptions.EcsMetadataBaseUri,
                EcsMetadataTimeout = credentialOptions.EcsMetadataTimeout,
                StsEndpoint = credentialOptions.StsEndpoint,
                CredentialsUri = credentialOptions.CredentialsUri,
                RefreshMargin = credentialOptions.RefreshMargin,
                HttpTimeout = credentialOptions.HttpTimeout,
                TimeProvider = credentialOptions.TimeProvider,
            };
        }

        var credentials = settings.Credentials ?? CreateCredentials(settings, credentialOptions);
        var region = AlibabaCloudRegion.Resolve(settings.Region, credentialOptions);
        KmsEndpoint endpoint;
        if (settings.Endpoint is not null)
        {
            endpoint = KmsEndpoint.FromUrl(settings.Endpoint, region, settings.CaCertificatePath);
        }
        else
        {
            if (settings.CaCertificatePath is not null)
                throw new KmsConfigurationException("A CA certificate can only be given together with an explicit endpoint.");
            endpoint = KmsEndpoint.ForRegion(region ?? throw new KmsConfigurationException(
                "No region: pass one, set region_id in the profile, or set ALIBABA_CLOUD_REGION_ID."), settings.UseVpcEndpoint);
        }

        return new KmsClient(new KmsClientOptions
        {
            Endpoint = endpoint,
            Credentials = credentials,
            SignatureVersion = settings.SignatureVersion,
            AllowInsecureHttp = settings.AllowInsecureHttp,
            Retry = settings.Retry,
            AttemptTimeout = settings.AttemptTimeout ?? TimeSpan.FromSeconds(30),
        });
    }

    private static ICredentialsProvider CreateCredentials(KmsConnectionSettings settings, CredentialResolutionOptions options)
    {
        if (settings.AccessKeyId is not null || settings.AccessKeySecret is not null)
        {
            if (string.IsNullOrEmpty(settings.AccessKeyId) || string.IsNullOrEmpty(settings.AccessKeySecret))
                throw new CredentialsException("An explicit AccessKey needs both the id and the secret.");
            return new StaticCredentialsProvider(new AlibabaCloudCredentials(settings.AccessKeyId, settings.AccessKeySecret, settings.SecurityToken));
        }
        return CredentialsChain.CreateDefault(options);
    }
}
