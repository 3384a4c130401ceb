namespace EnvelopeKms.Credentials;

/// <summary>
/// Tries credential sources in order and sticks with the first that is configured. Its
/// <see cref="SourceName"/> then names that source (never a secret), for "credentials from …" messages.
/// A source that is configured but broken (a profile without a secret, an STS refusal) fails the chain instead of
/// silently falling through to a different identity.
/// </summary>
public sealed class CredentialsChain : ICredentialsProvider
{
    private readonly IReadOnlyList<ICredentialsProvider> _providers;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private ICredentialsProvider? _resolved;

    public CredentialsChain(IEnumerable<ICredentialsProvider> providers)
    {
        _providers = providers?.ToList() ?? throw new ArgumentNullException(nameof(providers));
        if (_providers.Count == 0) throw new ArgumentException("A chain needs at least one source.", nameof(providers));
    }

    /// <summary>
    /// The standard order: explicit values → environment → aliyun CLI profile → ini credentials file →
    /// credentials URI → ECS instance RAM role. When <see cref="CredentialResolutionOptions.ProfileName"/> is given
    /// explicitly, only the profile files are consulted, so a mistyped profile is an error rather than a silent
    /// fallback to another identity.
    /// </summary>
    public static CredentialsChain CreateDefault(CredentialResolutionOptions? options = null, AlibabaCloudCredentials? explicitCredentials = null)
    {
        options ??= new CredentialResolutionOptions();
        var providers = new List<ICredentialsProvider>();
        if (explicitCredentials is not null) providers.Add(new StaticCredentialsProvider(explicitCredentials));
        bool namedProfile = CredentialResolutionOptions.NonEmpty(options.ProfileName) is not null;
        if (!namedProfile) providers.Add(new EnvironmentCredentialsProvider(options.GetEnvironmentVariable));
        if (namedProfile || !options.IsEnvironmentFlagSet("ALIBABA_CLOUD_CLI_PROFILE_DISABLED"))
            providers.Add(new ProfileCredentialsProvider(ProfileFileKind.AliyunCliConfig, options));
        providers.Add(new ProfileCredentialsProvider(ProfileFileKind.CredentialsIni, options));
        if (!namedProfile)
        {
            var uri = CredentialResolutionOptions.NonEmpty(options.CredentialsUri) ?? CredentialResolutionOptions.NonEmpty(options.GetEnvironmentVariable("ALIBABA_CLOUD_CREDENTIALS_URI"));
            if (uri is not null)
            {
                if (!Uri.TryCreate(uri, UriKind.Absolute, out var parsed)) throw new CredentialsException("ALIBABA_CLOUD_CREDENTIALS_URI is not an absolute URL.");
                providers.Add(new CredentialsUriProvider(parsed, options));
            }
            if (!options.IsEnvironmentFlagSet("ALIBABA_CLOUD_ECS_METADATA_DISABLED"))
                providers.Add(new EcsRamRoleCredentialsProvider(null, options));
        }
        return new CredentialsChain(providers);
    }

    /// <summary>The source in use once resolved.</summary>
    public ICredentialsProvider? ResolvedProvider => _resolved;

    public string SourceName => _resolved?.SourceName ?? "credentials chain (not resolved yet)";

    public async ValueTask<AlibabaCloudCredentials> GetCredentialsAsync(CancellationToken cancellationToken)
    {
        if (_resolved is { } resolved) return await resolved.GetCredentialsAsync(cancellationToken).ConfigureAwait(false);
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_resolved is { } again) return await again.GetCredentialsAsync(cancellationToken).ConfigureAwait(false);
            var reasons = new List<string>();
            foreach (var provider in _providers)
            {
                try
                {
                    var credentials = await provider.GetCredentialsAsync(cancellationToken).ConfigureAwait(false);
                    _resolved = provider;
                    return credentials;
                }
                catch (CredentialsNotFoundException e)
                {
                    reasons.Add(e.Message);
                }
            }
            throw new CredentialsNotFoundException("No Alibaba Cloud credentials were found. Tried: " + string.Join(" ", reasons) +
                " Pass an AccessKey explicitly, set ALIBABA_CLOUD_ACCESS_KEY_ID/ALIBABA_CLOUD_ACCESS_KEY_SECRET, or configure a profile with 'aliyun configure'.");
        }
        finally
        {
            _lock.Release();
        }
    }

    public void Invalidate() => _resolved?.Invalidate();
}
