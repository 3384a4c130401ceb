using System.Text;

namespace EnvelopeKms.Credentials;

/// <summary>
/// The RAM role attached to an ECS instance, from the instance metadata service: a session token first
/// (<c>PUT /latest/api/token</c>, IMDSv2 style), then <c>GET /latest/meta-data/ram/security-credentials/&lt;role&gt;</c>
/// with it. If the token endpoint answers with an error, the old token-less requests are used unless
/// <c>ALIBABA_CLOUD_IMDSV1_DISABLED=true</c>. If the service cannot be reached at all, this is not an ECS instance
/// and the source reports "not found" so a chain moves on.
/// </summary>
public sealed class EcsRamRoleCredentialsProvider : RefreshingCredentialsProvider
{
    private const string TokenPath = "latest/api/token";
    private const string RolesPath = "latest/meta-data/ram/security-credentials/";
    private readonly Uri _base;
    private readonly TimeSpan _timeout;
    private readonly bool _v1Disabled;
    private string? _roleName;

    public EcsRamRoleCredentialsProvider(string? roleName = null, CredentialResolutionOptions? options = null)
        : base(options?.TimeProvider, (options ?? new()).RefreshMargin)
    {
        options ??= new CredentialResolutionOptions();
        var baseText = options.EcsMetadataBaseUri.ToString();
        _base = new Uri(baseText.EndsWith('/') ? baseText : baseText + "/");
        _timeout = options.EcsMetadataTimeout;
        _v1Disabled = options.IsEnvironmentFlagSet("ALIBABA_CLOUD_IMDSV1_DISABLED");
        _roleName = CredentialResolutionOptions.NonEmpty(roleName) ?? CredentialResolutionOptions.NonEmpty(options.GetEnvironmentVariable("ALIBABA_CLOUD_ECS_METADATA"));
    }

    public override string SourceName => _roleName is null ? "ECS RAM role" : $"ECS RAM role ({_roleName})";

    protected override async Task<AlibabaCloudCredentials> FetchAsync(CancellationToken cancellationToken)
    {
        string? token = await GetTokenAsync(cancellationToken).ConfigureAwait(false);
        if (_roleName is null)
        {
            var (status, body) = await GetAsync(RolesPath, token, cancellationToken).ConfigureAwait(false);
            if (status == 404) throw new CredentialsNotFoundException("This ECS instance has no RAM role attached.");
            if (status != 200) throw new CredentialsException($"The ECS metadata service refused to list the RAM role (HTTP {status}).");
            _roleName = Encoding.UTF8.GetString(body).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault()
                ?? throw new CredentialsNotFoundException("This ECS instance has no RAM role attached.");
        }
        var (credStatus, credBody) = await GetAsync(RolesPath + Uri.EscapeDataString(_roleName), token, cancellationToken).ConfigureAwait(false);
        if (credStatus != 200)
            throw new CredentialsException($"The ECS metadata service gave no credentials for role '{_roleName}' (HTTP {credStatus}).");
        return CredentialsHttp.ParseCredentials(credBody, SourceName);
    }

    private async Task<string?> GetTokenAsync(CancellationToken cancellationToken)
    {
        var request = new HttpRequestMessage(HttpMethod.Put, new Uri(_base, TokenPath));
        request.Headers.TryAddWithoutValidation("x-aliyun-ecs-metadata-token-ttl-seconds", "21600");
        (int status, byte[] body) response;
        try
        {
            response = await CredentialsHttp.SendAsync(CredentialsHttp.NoProxy, request, _timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new CredentialsNotFoundException($"The ECS metadata service at {_base} is not reachable (not an ECS instance).", e);
        }
        if (response.status == 200) return Encoding.UTF8.GetString(response.body).Trim();
        if (_v1Disabled)
            throw new CredentialsException($"The ECS metadata service gave no session token (HTTP {response.status}) and IMDSv1 is disabled.");
        return null;
    }

    private async Task<(int Status, byte[] Body)> GetAsync(string path, string? token, CancellationToken cancellationToken)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, new Uri(_base, path));
        if (token is not null) request.Headers.TryAddWithoutValidation("x-aliyun-ecs-metadata-token", token);
        try
        {
            return await CredentialsHttp.SendAsync(CredentialsHttp.NoProxy, request, _timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new CredentialsException($"The ECS metadata service stopped answering: {e.Message}", e);
        }
    }
}
