namespace EnvelopeKms.Server.Operations;

/// <summary>The region and account the server pretends to be; they appear in every ARN.</summary>
internal sealed record ServiceIdentity(string Region, string AccountId)
{
    public string KeyArn(string keyId) => $"acs:kms:{Region}:{AccountId}:key/{keyId}";

    public string AliasArn(string aliasName) => $"acs:kms:{Region}:{AccountId}:{aliasName}";
}
