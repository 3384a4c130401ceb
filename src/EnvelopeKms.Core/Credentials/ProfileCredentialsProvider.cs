namespace EnvelopeKms.Credentials;

/// <summary>Which profile file a <see cref="ProfileCredentialsProvider"/> reads.</summary>
public enum ProfileFileKind
{
    /// <summary>The aliyun CLI's <c>~/.aliyun/config.json</c>.</summary>
    AliyunCliConfig,
    /// <summary>The ini file <c>~/.alibabacloud/credentials</c>.</summary>
    CredentialsIni,
}

/// <summary>
/// Credentials from a named profile of one profile file. The file is read on first use; the provider the profile's
/// mode calls for (static, STS AssumeRole, ECS role) then does the work.
/// </summary>
public sealed class ProfileCredentialsProvider : ICredentialsProvider
{
    private readonly ProfileFileKind _kind;
    private readonly CredentialResolutionOptions _options;
    private readonly string? _profileName;
    private ICredentialsProvider? _inner;

    public ProfileCredentialsProvider(ProfileFileKind kind, CredentialResolutionOptions? options = null, string? profileName = null)
    {
        _kind = kind;
        _options = options ?? new CredentialResolutionOptions();
        _profileName = CredentialResolutionOptions.NonEmpty(profileName) ?? _options.ResolvedProfileName;
    }

    public string Path => _kind == ProfileFileKind.AliyunCliConfig ? _options.ResolvedCliConfigPath : _options.ResolvedCredentialsFilePath;

    public AlibabaCloudProfile? Profile { get; private set; }

    public string SourceName => (Profile, _inner) switch
    {
        ({ Mode: "EcsRamRole" } p, { } inner) => $"{inner.SourceName}, from profile '{p.Name}' ({p.FilePath})",
        (not null, { } inner) => inner.SourceName,
        _ => $"profile file {Path}",
    };

    public ValueTask<AlibabaCloudCredentials> GetCredentialsAsync(CancellationToken cancellationToken)
    {
        if (_inner is null)
        {
            var profile = Load() ?? throw new CredentialsNotFoundException(
                File.Exists(Path) ? $"{Path} has no profile '{_profileName ?? "default"}'." : $"{Path} does not exist.");
            _inner = profile.CreateProvider(_options);
            Profile = profile;
        }
        return _inner.GetCredentialsAsync(cancellationToken);
    }

    public void Invalidate() => _inner?.Invalidate();

    private AlibabaCloudProfile? Load() => _kind == ProfileFileKind.AliyunCliConfig
        ? AlibabaCloudProfile.TryLoadCliProfile(Path, _profileName)
        : AlibabaCloudProfile.TryLoadIniProfile(Path, _profileName);
}
