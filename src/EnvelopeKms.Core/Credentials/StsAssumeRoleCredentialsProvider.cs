using System.Security.Cryptography;
using System.Text;
using EnvelopeKms.Cloud.Signing;
using EnvelopeKms.Cloud;

namespace EnvelopeKms.Credentials;

/// <summary>
/// Temporary credentials for a RAM role from STS <c>AssumeRole</c> (version 2015-04-01), signed with the source
/// credentials using signature V1: common parameters in the query, RoleArn/RoleSessionName/DurationSeconds/Policy
/// in a form body, the signature covering both.
/// </summary>
public sealed class StsAssumeRoleCredentialsProvider : RefreshingCredentialsProvider
{
    private readonly ICredentialsProvider _source;
    private readonly string _roleArn;
    private readonly string _sessionName;
    private readonly int _durationSeconds;
    private readonly string? _policy;
    private readonly string? _externalId;
    private readonly Uri _endpoint;
    private readonly TimeSpan _timeout;

    public StsAssumeRoleCredentialsProvider(ICredentialsProvider source, string roleArn, string? roleSessionName = null,
        int durationSeconds = 3600, string? policy = null, string? externalId = null, Uri? stsEndpoint = null,
        CredentialResolutionOptions? options = null)
        : base(options?.TimeProvider, (options ?? new()).RefreshMargin)
    {
        options ??= new CredentialResolutionOptions();
        _source = source ?? throw new ArgumentNullException(nameof(source));
        _roleArn = CredentialResolutionOptions.NonEmpty(roleArn) ?? throw new CredentialsException("AssumeRole needs a role ARN.");
        _sessionName = CredentialResolutionOptions.NonEmpty(roleSessionName) ?? $"envelopekms-{DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()}";
        if (durationSeconds < 900) throw new CredentialsException("STS issues role credentials for at least 900 seconds.");
        _durationSeconds = durationSeconds;
        _policy = CredentialResolutionOptions.NonEmpty(policy);
        _externalId = CredentialResolutionOptions.NonEmpty(externalId);
        _endpoint = stsEndpoint ?? options.StsEndpointFor(null, vpc: false);
        if (_endpoint.Scheme != Uri.UriSchemeHttps && !LoopbackHost.Is(_endpoint.Host))
            throw new CredentialsException($"Refusing plain http to the STS endpoint '{_endpoint.Host}'.");
        _timeout = options.HttpTimeout;
    }

    public override string SourceName => $"STS AssumeRole ({_roleArn}) via {_source.SourceName}";

    protected override async Task<AlibabaCloudCredentials> FetchAsync(CancellationToken cancellationToken)
    {
        var source = await _source.GetCredentialsAsync(cancellationToken).ConfigureAwait(false);
        var body = new List<AcsParameter>
        {
            AcsParameter.Text("RoleArn", _roleArn),
            AcsParameter.Text("RoleSessionName", _sessionName),
            AcsParameter.Text("DurationSeconds", _durationSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        };
        if (_policy is not null) body.Add(AcsParameter.Text("Policy", _policy));
        if (_externalId is not null) body.Add(AcsParameter.Text("ExternalId", _externalId));

        var nonce = Convert.ToHexString(RandomNumberGenerator.GetBytes(16)).ToLowerInvariant();
        var all = RpcSignatureV1.SignRequest("POST", "AssumeRole", "2015-04-01", body, source.AccessKeyId, source.AccessKeySecret,
            source.SecurityToken, Now, nonce);
        var bodyNames = body.Select(p => p.Name).ToHashSet();
        var query = string.Join("&", all.Where(p => !bodyNames.Contains(p.Name))
            .Select(p => AcsPercentEncoding.Encode(p.Name) + "=" + AcsPercentEncoding.Encode(p.TextValue)));
        var form = string.Join("&", body.Select(p => AcsPercentEncoding.Encode(p.Name) + "=" + AcsPercentEncoding.Encode(p.TextValue)));

        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(_endpoint, "/?" + query))
        {
            Content = new StringContent(form, Encoding.UTF8, "application/x-www-form-urlencoded"),
        };
        request.Content.Headers.ContentType!.CharSet = null;
        (int status, byte[] body) response;
        try
        {
            response = await CredentialsHttp.SendAsync(CredentialsHttp.Default, request, _timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new CredentialsException($"STS at {_endpoint.Host} could not be reached to assume '{_roleArn}': {e.Message}", e);
        }
        if (response.status != 200)
            throw new CredentialsException($"STS refused to assume '{_roleArn}' with the credentials from {_source.SourceName}: {CredentialsHttp.DescribeError(response.status, response.body)}.");
        return CredentialsHttp.ParseCredentials(response.body, "STS AssumeRole");
    }
}
