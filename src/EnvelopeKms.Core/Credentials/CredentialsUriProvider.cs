using EnvelopeKms.Cloud;

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
            throw new CredentialsException($"The credentials URI '{Display(uri)}' is not http(s).");
        // The answer is a secret: as for KMS and STS, plain http only to this machine.
        if (uri.Scheme == Uri.UriSchemeHttp && !LoopbackHost.Is(uri.Host))
            throw new CredentialsException($"Refusing plain http to the credentials URI '{Display(uri)}': the credentials would cross the network unencrypted. Use https or a loopback host.");
        _timeout = (options ?? new()).HttpTimeout;
    }

    public override string SourceName => $"credentials URI ({Display(_uri)})";

    /// <summary>Scheme, host, port and path: never the user info (a password) or the query (often a token).</summary>
    private static string Display(Uri uri) => $"{uri.Scheme}://{uri.Authority}{uri.AbsolutePath}";

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
            throw new CredentialsException($"The {SourceName} refused: {CredentialsHttp.DescribeError(response.status, response.body, includeMessage: false)}.");
        return CredentialsHttp.ParseCredentials(response.body, SourceName);
    }
}
