namespace EnvelopeKms.Credentials;

/// <summary>
/// Credentials from <c>ALIBABA_CLOUD_CREDENTIALS_URI</c>: <c>GET &lt;uri&gt;</c> answers
/// <c>{AccessKeyId, AccessKeySecret, SecurityToken, Expiration}</c> (a sidecar or local credential server).
/// </summary>
public sealed class CredentialsUriProvider : RefreshingCredentialsProvider
{
    private readonly Uri _uri;
    private readonly TimeSpan _timeout;

    public CredentialsUriProvider(Uri uri, CredentialResolutionOptions? options = null)
        : base(options?.TimeProvider, (options ?? new()).RefreshMargin)
    {
        _uri = uri ?? throw new ArgumentNullException(nameof(uri));
        if (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)
            throw new CredentialsException($"The credentials URI '{uri.GetLeftPart(UriPartial.Path)}' is not http(s).");
        _timeout = (options ?? new()).HttpTimeout;
    }

    public override string SourceName => $"credentials URI ({_uri.GetLeftPart(UriPartial.Path)})";

    protected override async Task<AlibabaCloudCredentials> FetchAsync(CancellationToken cancellationToken)
    {
        (int status, byte[] body) response;
        try
        {
            response = await CredentialsHttp.SendAsync(CredentialsHttp.Default, new HttpRequestMessage(HttpMethod.Get, _uri), _timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new CredentialsException($"The {SourceName} could not be reached: {e.Message}", e);
        }
        if (response.status != 200)
            throw new CredentialsException($"The {SourceName} refused: {CredentialsHttp.DescribeError(response.status, response.body)}.");
        return CredentialsHttp.ParseCredentials(response.body, SourceName);
    }
}
