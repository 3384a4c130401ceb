namespace EnvelopeKms.Credentials;

/// <summary>Finds the region: the explicit value, else the selected profile's <c>region_id</c>, else the environment.</summary>
public static class AlibabaCloudRegion
{
    private static readonly string[] EnvironmentNames = { "ALIBABA_CLOUD_REGION_ID", "ALIBABACLOUD_REGION_ID", "ALICLOUD_REGION_ID", "ALICLOUD_REGION" };

    public static string? Resolve(string? explicitRegion, CredentialResolutionOptions? options = null)
    {
        if (CredentialResolutionOptions.NonEmpty(explicitRegion) is { } region) return region;
        options ??= new CredentialResolutionOptions();
        var profileName = options.ResolvedProfileName;
        if (!options.IsEnvironmentFlagSet("ALIBABA_CLOUD_CLI_PROFILE_DISABLED") || options.ProfileName is not null)
        {
            if (AlibabaCloudProfile.TryLoadCliProfile(options.ResolvedCliConfigPath, profileName)?.RegionId is { } cli) return cli;
        }
        if (AlibabaCloudProfile.TryLoadIniProfile(options.ResolvedCredentialsFilePath, profileName)?.RegionId is { } ini) return ini;
        return options.FirstEnvironment(EnvironmentNames);
    }
}
