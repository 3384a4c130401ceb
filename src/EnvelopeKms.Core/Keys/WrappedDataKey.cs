namespace EnvelopeKms.Keys;

/// <summary>
/// One wrapped-data-key entry of a file header: which KMS wrapped the data key, under which key, and the
/// <c>CiphertextBlob</c> it returned (kept as the exact base64 text KMS returned).
/// </summary>
public sealed record WrappedDataKey(string ProviderId, string KeyId, string KeyVersionId, string Region, string CiphertextBlob)
{
    /// <summary>Provider id of the Alibaba Cloud KMS shared gateway (OpenAPI 2016-01-20).</summary>
    public const string AlibabaKmsProvider = "aliyun-kms";

    public override string ToString() => $"{ProviderId}:{KeyId}";
}
