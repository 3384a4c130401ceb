namespace EnvelopeKms.Kms;

/// <summary>
/// Key ARNs (<c>acs:kms:&lt;region&gt;:&lt;uid&gt;:key/&lt;id&gt;</c>) as the Alibaba Cloud Encryption SDK requires them: it
/// records the ARN of each KMS key in its messages and takes the region from it, so a bare key id or an alias must
/// be turned into the key's ARN before a message is written.
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

    /// <summary>
    /// The ARN of the key that <paramref name="keyId"/> (key id, alias, alias ARN or key ARN) names: a key ARN is
    /// returned as given, without a call; anything else is looked up with DescribeKey.
    /// </summary>
    public static async Task<string> ResolveAsync(KmsClient client, string keyId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentException.ThrowIfNullOrWhiteSpace(keyId);
        string trimmed = keyId.Trim();
        if (IsKeyArn(trimmed)) return trimmed;
        var metadata = await client.DescribeKeyAsync(trimmed, cancellationToken).ConfigureAwait(false);
        if (!IsKeyArn(metadata.Arn))
            throw KmsResponseReader.Invalid("DescribeKey", $"it gives no key ARN for '{trimmed}' (Arn '{metadata.Arn}')");
        return metadata.Arn!;
    }

    /// <summary>Resolves each of <paramref name="keyIds"/> in order (see <see cref="ResolveAsync(KmsClient, string, CancellationToken)"/>).</summary>
    public static async Task<IReadOnlyList<string>> ResolveAsync(KmsClient client, IReadOnlyList<string> keyIds, CancellationToken cancellationToken = default)
    {
        var arns = new List<string>(keyIds.Count);
        foreach (var keyId in keyIds) arns.Add(await ResolveAsync(client, keyId, cancellationToken).ConfigureAwait(false));
        return arns;
    }
}
