namespace EnvelopeKms.Credentials;

/// <summary>
/// An AccessKey pair, optionally with an STS security token and its expiry. It is a class, not a record, so that
/// no generated <c>ToString</c> can print the secret: <see cref="ToString"/> redacts everything but the key id.
/// </summary>
public sealed class AlibabaCloudCredentials
{
    public AlibabaCloudCredentials(string accessKeyId, string accessKeySecret, string? securityToken = null, DateTimeOffset? expiration = null)
    {
        if (string.IsNullOrWhiteSpace(accessKeyId)) throw new ArgumentException("The AccessKey id is empty.", nameof(accessKeyId));
        if (string.IsNullOrEmpty(accessKeySecret)) throw new ArgumentException("The AccessKey secret is empty.", nameof(accessKeySecret));
        AccessKeyId = accessKeyId.Trim();
        AccessKeySecret = accessKeySecret;
        SecurityToken = string.IsNullOrEmpty(securityToken) ? null : securityToken;
        Expiration = expiration;
    }

    public string AccessKeyId { get; }

    /// <summary>The secret. Never logged, never put in a message.</summary>
    public string AccessKeySecret { get; }

    /// <summary>The STS token, for temporary credentials; null for a long-term AccessKey.</summary>
    public string? SecurityToken { get; }

    /// <summary>When temporary credentials stop working; null when they do not expire.</summary>
    public DateTimeOffset? Expiration { get; }

    /// <summary>True when the credentials expire before <paramref name="now"/> + <paramref name="margin"/>.</summary>
    public bool ExpiresWithin(DateTimeOffset now, TimeSpan margin) => Expiration is { } e && e - margin <= now;

    public override string ToString()
        => $"AccessKeyId={AccessKeyId}, AccessKeySecret=<redacted>, SecurityToken={(SecurityToken is null ? "<none>" : "<redacted>")}"
           + (Expiration is { } e ? $", Expiration={e:yyyy-MM-ddTHH:mm:ssZ}" : string.Empty);
}
