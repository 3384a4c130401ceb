using EnvelopeKms.Cloud;

namespace EnvelopeKms.Credentials;

/// <summary>
/// Everything the credential sources read from the outside world, injectable so that tests (and unusual setups)
/// can point each source at local files and local stand-in services. Defaults are the real locations.
/// </summary>
public sealed class CredentialResolutionOptions
{
    /// <summary>Environment lookup; defaults to the process environment.</summary>
    public Func<string, string?> GetEnvironmentVariable { get; init; } = Environment.GetEnvironmentVariable;

    /// <summary>Home directory holding <c>.aliyun/config.json</c> and <c>.alibabacloud/credentials</c>.</summary>
    public string? HomeDirectory { get; init; }

    /// <summary>The aliyun CLI configuration; default <c>~/.aliyun/config.json</c>.</summary>
    public string? CliConfigPath { get; init; }

    /// <summary>The ini credentials file; default <c>ALIBABA_CLOUD_CREDENTIALS_FILE</c> or <c>~/.alibabacloud/credentials</c>.</summary>
    public string? CredentialsFilePath { get; init; }

    /// <summary>Profile to use; default <c>ALIBABA_CLOUD_PROFILE</c> (or legacy names), else the CLI's current / <c>default</c>.</summary>
    public string? ProfileName { get; init; }

    /// <summary>Base of the ECS instance metadata service.</summary>
    public Uri EcsMetadataBaseUri { get; init; } = new("http://100.100.100.200");

    /// <summary>Timeout of each metadata request (the service is link-local, so it is short).</summary>
    public TimeSpan EcsMetadataTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>STS endpoint for AssumeRole; default from the profile's sts_region or <c>ALIBABA_CLOUD_STS_REGION</c>, else https://sts.aliyuncs.com.</summary>
    public Uri? StsEndpoint { get; init; }

    /// <summary>Credentials URI; default <c>ALIBABA_CLOUD_CREDENTIALS_URI</c>.</summary>
    public string? CredentialsUri { get; init; }

    /// <summary>Temporary credentials are refreshed this long before they expire (at most half their lifetime).</summary>
    public TimeSpan RefreshMargin { get; init; } = TimeSpan.FromMinutes(15);

    /// <summary>Timeout of STS and credentials-URI requests.</summary>
    public TimeSpan HttpTimeout { get; init; } = TimeSpan.FromSeconds(15);

    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    internal string Home => HomeDirectory ?? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);

    internal string ResolvedCliConfigPath => CliConfigPath ?? Path.Combine(Home, ".aliyun", "config.json");

    internal string ResolvedCredentialsFilePath
        => CredentialsFilePath ?? NonEmpty(GetEnvironmentVariable("ALIBABA_CLOUD_CREDENTIALS_FILE")) ?? Path.Combine(Home, ".alibabacloud", "credentials");

    internal string? ResolvedProfileName
        => NonEmpty(ProfileName) ?? FirstEnvironment("ALIBABA_CLOUD_PROFILE", "ALIBABACLOUD_PROFILE", "ALICLOUD_PROFILE");

    internal bool IsEnvironmentFlagSet(string name)
        => string.Equals(GetEnvironmentVariable(name)?.Trim(), "true", StringComparison.OrdinalIgnoreCase);

    internal string? FirstEnvironment(params string[] names)
    {
        foreach (var name in names)
        {
            if (NonEmpty(GetEnvironmentVariable(name)) is { } value) return value;
        }
        return null;
    }

    internal Uri StsEndpointFor(string? stsRegion, bool vpc)
    {
        if (StsEndpoint is not null) return StsEndpoint;
        string from = "the profile's sts_region";
        if (NonEmpty(stsRegion) is null)
        {
            stsRegion = NonEmpty(GetEnvironmentVariable("ALIBABA_CLOUD_STS_REGION"));
            from = "ALIBABA_CLOUD_STS_REGION";
        }
        else stsRegion = NonEmpty(stsRegion);
        vpc |= IsEnvironmentFlagSet("ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED");
        if (stsRegion is null) return new Uri("https://sts.aliyuncs.com/");
        // The region becomes part of the host that receives a signed AssumeRole request: only a region id may
        // (a value such as "attacker.example/x#" made the host sts.attacker.example; "cn hangzhou" did not parse).
        if (!RegionIds.IsValid(stsRegion))
            throw new CredentialsException($"{from} '{(stsRegion.Length > 64 ? stsRegion[..64] + "…" : stsRegion)}' is not a region id such as cn-hangzhou.");
        return new Uri($"https://sts{(vpc ? "-vpc" : "")}.{stsRegion}.aliyuncs.com/");
    }

    internal static string? NonEmpty(string? s) => string.IsNullOrWhiteSpace(s) ? null : s.Trim();
}
