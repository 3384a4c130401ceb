namespace EnvelopeKms.Credentials;

/// <summary>A source of Alibaba Cloud credentials (explicit values, environment, profile file, STS, ECS role…).</summary>
public interface ICredentialsProvider
{
    /// <summary>A short name of where the credentials come from, e.g. <c>environment</c>; never a secret.</summary>
    string SourceName { get; }

    /// <summary>
    /// Returns current credentials, fetching or refreshing them when needed. Throws
    /// <see cref="CredentialsNotFoundException"/> when this source is not configured at all, and
    /// <see cref="CredentialsException"/> when it is configured but fails.
    /// </summary>
    ValueTask<AlibabaCloudCredentials> GetCredentialsAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Forgets cached temporary credentials so the next call fetches new ones; called when KMS reports an
    /// expired security token. A no-op for long-term keys.
    /// </summary>
    void Invalidate();
}
