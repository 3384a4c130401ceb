using EnvelopeKms.Cloud;

namespace EnvelopeKms.Kms;

/// <summary>Turns key ids and aliases into key ARNs (<see cref="KmsKeyArn"/>) with DescribeKey, for the Encryption SDK formats.</summary>
public static class KmsKeyArnResolver
{
    /// <summary>
    /// The ARN of the key that <paramref name="keyId"/> (key id, alias, alias ARN or key ARN) names: a key ARN is
    /// returned as given, without a call; anything else is looked up with DescribeKey.
    /// </summary>
    public static async Task<string> ResolveAsync(KmsClient client, string keyId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentException.ThrowIfNullOrWhiteSpace(keyId);
        string trimmed = keyId.Trim();
        if (KmsKeyArn.IsKeyArn(trimmed)) return trimmed;
        var metadata = await client.DescribeKeyAsync(trimmed, cancellationToken).ConfigureAwait(false);
        if (!KmsKeyArn.IsKeyArn(metadata.Arn))
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
