using EnvelopeKms.Cloud;

namespace EnvelopeKms.Kms;

/// <summary>
/// Where KMS requests go: the public regional endpoint <c>https://kms.&lt;region&gt;.aliyuncs.com</c>, its VPC form
/// <c>https://kms-vpc.&lt;region&gt;.aliyuncs.com</c>, or an explicit URL (a KMS instance host, a local server),
/// optionally with a CA certificate that is trusted for this endpoint only.
/// </summary>
public sealed class KmsEndpoint
{
    private KmsEndpoint(Uri baseUri, string? regionId, string? caCertificatePath)
    {
        BaseUri = baseUri;
        RegionId = regionId;
        CaCertificatePath = caCertificatePath;
    }

    /// <summary>Scheme, host and port; the path is always <c>/</c>.</summary>
    public Uri BaseUri { get; }

    /// <summary>The region the endpoint serves, when known (recorded in wrapped-key entries).</summary>
    public string? RegionId { get; }

    /// <summary>A PEM or DER CA certificate trusted, in addition to the system roots, for this endpoint only.</summary>
    public string? CaCertificatePath { get; }

    public bool IsLoopback => LoopbackHost.Is(BaseUri.Host);

    public static KmsEndpoint ForRegion(string regionId, bool vpc = false)
    {
        RegionIds.Validate(regionId);
        var host = vpc ? $"kms-vpc.{regionId}.aliyuncs.com" : $"kms.{regionId}.aliyuncs.com";
        return new KmsEndpoint(new Uri($"https://{host}/"), regionId, null);
    }

    /// <summary>
    /// An explicit endpoint. A bare host name means HTTPS. Plain <c>http://</c> is accepted here; whether it may be
    /// used is decided by <see cref="EnsureTransportAllowed"/> when a client is built.
    /// </summary>
    public static KmsEndpoint FromUrl(string url, string? regionId = null, string? caCertificatePath = null)
    {
        if (string.IsNullOrWhiteSpace(url)) throw new ArgumentException("The KMS endpoint is empty.", nameof(url));
        url = url.Trim();
        if (!url.Contains("://", StringComparison.Ordinal)) url = "https://" + url;
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp))
            throw new ArgumentException($"The KMS endpoint '{url}' is not an http(s) URL.", nameof(url));
        if (uri.AbsolutePath != "/" || uri.Query.Length > 0 || uri.UserInfo.Length > 0)
            throw new ArgumentException($"The KMS endpoint '{url}' must be scheme://host[:port] with no path, query or user info.", nameof(url));
        if (regionId is not null) RegionIds.Validate(regionId);
        if (caCertificatePath is not null)
        {
            if (uri.Scheme != Uri.UriSchemeHttps)
                throw new ArgumentException("A CA certificate only makes sense for an https endpoint.", nameof(caCertificatePath));
            if (!File.Exists(caCertificatePath))
                throw new FileNotFoundException($"The CA certificate file '{caCertificatePath}' does not exist.", caCertificatePath);
        }
        return new KmsEndpoint(new Uri(uri.GetLeftPart(UriPartial.Authority) + "/"), regionId ?? GuessRegion(uri.Host), caCertificatePath);
    }

    /// <summary>Refuses plain HTTP to anything but a loopback host unless the caller explicitly opted in.</summary>
    public void EnsureTransportAllowed(bool allowInsecureHttp)
    {
        if (BaseUri.Scheme == Uri.UriSchemeHttps || IsLoopback || allowInsecureHttp) return;
        throw new KmsConfigurationException(
            $"Refusing plain http to '{BaseUri.Host}': credentials and data keys would cross the network unencrypted. " +
            "Use https, a loopback host (127.0.0.0/8, ::1, localhost), or set AllowInsecureHttp explicitly.");
    }

    /// <summary>Recovers the region from the standard host names (kms[-vpc].&lt;region&gt;.aliyuncs.com).</summary>
    private static string? GuessRegion(string host)
    {
        var parts = host.Split('.');
        if (parts.Length == 4 && (parts[0] == "kms" || parts[0] == "kms-vpc") && parts[2] == "aliyuncs" && parts[3] == "com")
            return parts[1];
        return null;
    }

    public override string ToString() => BaseUri.GetLeftPart(UriPartial.Authority);
}

/// <summary>The KMS client was configured in a way that is refused (bad endpoint, insecure transport).</summary>
public sealed class KmsConfigurationException : Exception
{
    public KmsConfigurationException(string message, Exception? inner = null) : base(message, inner) { }
}
