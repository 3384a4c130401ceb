namespace EnvelopeKms.Cloud;

/// <summary>
/// Key ARNs (<c>acs:kms:&lt;region&gt;:&lt;uid&gt;:key/&lt;id&gt;</c>) as the Alibaba Cloud Encryption SDK requires them: it
/// records the ARN of each KMS key in its messages and takes the region from it, so a bare key id or an alias must
/// be turned into the key's ARN before a message is written (<c>KmsKeyArnResolver</c> asks KMS for it).
/// </summary>
public static class KmsKeyArn
{
    /// <summary>
    /// True for a key ARN in the SDK's sense: exactly five ':'-separated parts, <c>acs</c>, <c>kms</c>, a region, an
    /// account id and <c>key/&lt;id&gt;</c>, none empty (an alias ARN is not a key ARN).
    /// </summary>
    public static bool IsKeyArn(string? value)
    {
        if (string.IsNullOrEmpty(value)) return false;
        var parts = value.Split(':');
        return parts.Length == 5 && parts[0] == "acs" && parts[1] == "kms" && parts[2].Length > 0 && parts[3].Length > 0
            && parts[4].StartsWith("key/", StringComparison.Ordinal) && parts[4].Length > 4;
    }

    /// <summary>The region of a key ARN, or null when <paramref name="arn"/> is not one.</summary>
    public static string? RegionOf(string arn) => IsKeyArn(arn) ? arn.Split(':')[2] : null;

    /// <summary>The key id of a key ARN (what follows <c>key/</c>), or null when <paramref name="arn"/> is not one.</summary>
    public static string? KeyIdOf(string arn) => IsKeyArn(arn) ? arn.Split(':')[4][4..] : null;
}
