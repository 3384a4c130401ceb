namespace EnvelopeKms.Cloud;

/// <summary>
/// A parsed key reference: a key id, an alias (<c>alias/…</c>), a key ARN (<c>acs:kms:&lt;region&gt;:&lt;uid&gt;:key/&lt;id&gt;</c>)
/// or an alias ARN (<c>acs:kms:&lt;region&gt;:&lt;uid&gt;:alias/…</c>). Two references match when they name the same key
/// (or alias) and do not disagree on region or account where both say one.
/// </summary>
public sealed record KmsKeyReference(string Original, string? KeyId, string? AliasName, string? Region, string? AccountId)
{
    public static KmsKeyReference Parse(string reference)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(reference);
        var s = reference.Trim();
        if (s.StartsWith("acs:kms:", StringComparison.OrdinalIgnoreCase))
        {
            // acs:kms:<region>:<uid>:<resource>, where the resource may itself contain '/'.
            var parts = s.Split(':', 5);
            if (parts.Length == 5)
            {
                string? region = NullIfEmpty(parts[2]), account = NullIfEmpty(parts[3]), resource = parts[4];
                if (resource.StartsWith("key/", StringComparison.Ordinal) && resource.Length > 4)
                    return new KmsKeyReference(s, resource[4..], null, region, account);
                if (resource.StartsWith("alias/", StringComparison.Ordinal) && resource.Length > 6)
                    return new KmsKeyReference(s, null, resource, region, account);
            }
            throw new ArgumentException($"'{s}' is not a KMS key or alias ARN.", nameof(reference));
        }
        if (s.StartsWith("alias/", StringComparison.Ordinal)) return new KmsKeyReference(s, null, s, null, null);
        return new KmsKeyReference(s, s, null, null, null);
    }

    public bool IsAlias => AliasName is not null;

    public bool Matches(KmsKeyReference other)
    {
        if (!Compatible(Region, other.Region) || !Compatible(AccountId, other.AccountId)) return false;
        if (KeyId is not null && other.KeyId is not null) return string.Equals(KeyId, other.KeyId, StringComparison.OrdinalIgnoreCase);
        if (AliasName is not null && other.AliasName is not null) return string.Equals(AliasName, other.AliasName, StringComparison.Ordinal);
        return false;
    }

    private static bool Compatible(string? a, string? b) => a is null || b is null || string.Equals(a, b, StringComparison.OrdinalIgnoreCase);

    private static string? NullIfEmpty(string s) => s.Length == 0 ? null : s;

    public override string ToString() => Original;
}
