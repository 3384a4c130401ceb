using EnvelopeKms.Credentials;
using EnvelopeKms.Cloud;

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

    /// <summary>
    /// Explicit endpoints of regions (region id → URL or host): for keys given as ARNs of those regions and for
    /// wrapped keys recorded in them, and for the main endpoint when no <see cref="Endpoint"/> is given and the
    /// region is one of them. Other regions use <c>kms[-vpc].&lt;region&gt;.aliyuncs.com</c>.
    /// </summary>
    public IReadOnlyDictionary<string, string>? RegionEndpoints { get; init; }

    /// <summary>CA certificate trusted for the <see cref="RegionEndpoints"/> only (each must then be https).</summary>
    public string? RegionEndpointCaCertificatePath { get; init; }

    /// <summary>Allow plain http to non-loopback <see cref="RegionEndpoints"/>.</summary>
    public bool RegionEndpointAllowInsecureHttp { get; init; }

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
        bool allowInsecureHttp = settings.AllowInsecureHttp;
        if (settings.Endpoint is not null)
        {
            endpoint = KmsEndpoint.FromUrl(settings.Endpoint, region, settings.CaCertificatePath);
        }
        else if (region is not null && settings.CaCertificatePath is null && FindRegionEndpoint(settings, region) is { } mapped)
        {
            endpoint = KmsEndpoint.FromUrl(mapped, region, settings.RegionEndpointCaCertificatePath);
            allowInsecureHttp = settings.RegionEndpointAllowInsecureHttp;
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
            AllowInsecureHttp = allowInsecureHttp,
            Retry = settings.Retry,
            AttemptTimeout = settings.AttemptTimeout ?? TimeSpan.FromSeconds(30),
        });
    }

    /// <summary>
    /// The per-region clients of a connection whose main client is <paramref name="home"/> (made by
    /// <see cref="Create"/> from the same <paramref name="settings"/>): the <see cref="KmsConnectionSettings.RegionEndpoints"/>
    /// with their CA certificate and http rule, and the VPC choice for the standard endpoints of other regions.
    /// </summary>
    public static KmsRegionalClients CreateRegionalClients(KmsConnectionSettings settings, KmsClient home, Action<KmsClient>? clientCreated = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(home);
        var endpoints = new Dictionary<string, KmsEndpoint>(StringComparer.OrdinalIgnoreCase);
        foreach (var (region, url) in settings.RegionEndpoints ?? new Dictionary<string, string>())
        {
            if (!RegionIds.IsValid(region))
                throw new KmsConfigurationException($"'{region}' is not a region id such as cn-shanghai; region endpoints are keyed by region id.");
            try
            {
                endpoints.Add(region, KmsEndpoint.FromUrl(url, region, settings.RegionEndpointCaCertificatePath));
            }
            catch (ArgumentException e)
            {
                throw new KmsConfigurationException($"The endpoint of the region '{region}' is not usable: {e.Message}", e);
            }
        }
        return new KmsRegionalClients(home, new KmsRegionalClientsOptions
        {
            RegionEndpoints = endpoints,
            AllowInsecureHttp = settings.RegionEndpointAllowInsecureHttp,
            UseVpcEndpoint = settings.UseVpcEndpoint,
            ClientCreated = clientCreated,
        });
    }

    private static string? FindRegionEndpoint(KmsConnectionSettings settings, string region)
        => settings.RegionEndpoints?.FirstOrDefault(p => string.Equals(p.Key, region, StringComparison.OrdinalIgnoreCase)).Value;

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
