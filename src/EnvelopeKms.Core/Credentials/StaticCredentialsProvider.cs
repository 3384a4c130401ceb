namespace EnvelopeKms.Credentials;

/// <summary>Credentials given explicitly (cmdlet parameters, or a profile's AK / StsToken mode).</summary>
public sealed class StaticCredentialsProvider : ICredentialsProvider
{
    private readonly AlibabaCloudCredentials _credentials;

    public StaticCredentialsProvider(AlibabaCloudCredentials credentials, string sourceName = "explicit")
    {
        _credentials = credentials ?? throw new ArgumentNullException(nameof(credentials));
        SourceName = sourceName;
    }

    public StaticCredentialsProvider(string accessKeyId, string accessKeySecret, string? securityToken = null)
        : this(new AlibabaCloudCredentials(accessKeyId, accessKeySecret, securityToken)) { }

    public string SourceName { get; }

    public ValueTask<AlibabaCloudCredentials> GetCredentialsAsync(CancellationToken cancellationToken) => ValueTask.FromResult(_credentials);

    public void Invalidate() { }

    public override string ToString() => $"{SourceName}: {_credentials}";
}
