namespace EnvelopeKms.Credentials;

/// <summary>
/// AccessKey from environment variables: <c>ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET/_SECURITY_TOKEN</c> first, then the
/// legacy names other Alibaba Cloud tools read (<c>ALIBABACLOUD_*</c>, <c>ALICLOUD_*</c>, Terraform's
/// <c>ALICLOUD_ACCESS_KEY/ALICLOUD_SECRET_KEY</c>). The bare <c>ACCESS_KEY_ID</c> names are deliberately not read:
/// they are too generic to be trusted as Alibaba Cloud keys.
/// </summary>
public sealed class EnvironmentCredentialsProvider : ICredentialsProvider
{
    private static readonly (string Id, string Secret, string Token)[] NameSets =
    {
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN"),
        ("ALIBABACLOUD_ACCESS_KEY_ID", "ALIBABACLOUD_ACCESS_KEY_SECRET", "ALIBABACLOUD_SECURITY_TOKEN"),
        ("ALICLOUD_ACCESS_KEY_ID", "ALICLOUD_ACCESS_KEY_SECRET", "ALICLOUD_SECURITY_TOKEN"),
        ("ALICLOUD_ACCESS_KEY", "ALICLOUD_SECRET_KEY", "ALICLOUD_SECURITY_TOKEN"),
    };

    private readonly Func<string, string?> _getVariable;

    public EnvironmentCredentialsProvider(Func<string, string?>? getEnvironmentVariable = null)
        => _getVariable = getEnvironmentVariable ?? Environment.GetEnvironmentVariable;

    public string SourceName { get; private set; } = "environment";

    public ValueTask<AlibabaCloudCredentials> GetCredentialsAsync(CancellationToken cancellationToken)
    {
        foreach (var (idName, secretName, tokenName) in NameSets)
        {
            var id = CredentialResolutionOptions.NonEmpty(_getVariable(idName));
            if (id is null) continue;
            var secret = _getVariable(secretName);
            if (string.IsNullOrEmpty(secret))
                throw new CredentialsException($"{idName} is set but {secretName} is not.");
            SourceName = $"environment ({idName})";
            return ValueTask.FromResult(new AlibabaCloudCredentials(id, secret, CredentialResolutionOptions.NonEmpty(_getVariable(tokenName))));
        }
        throw new CredentialsNotFoundException("No AccessKey environment variables (ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET) are set.");
    }

    public void Invalidate() { }
}
