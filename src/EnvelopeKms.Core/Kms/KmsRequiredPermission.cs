using EnvelopeKms.Cloud;

namespace EnvelopeKms.Kms;

/// <summary>
/// The RAM permission a refused KMS call needed: the action (<c>kms:&lt;ApiName&gt;</c>) and the resources it is
/// authorized on, per Alibaba Cloud's "Authorization information" for KMS: the key container
/// (<c>acs:kms:&lt;region&gt;:&lt;account&gt;:key</c>) for CreateKey and ListKeys, the alias container for ListAliases, the
/// alias and the key for CreateAlias/UpdateAlias/DeleteAlias, and the key for everything else. It is named from the
/// request this client made, so it is known even though KMS's own diagnostic message is opaque; what the request
/// does not say (the account of a key given by id, the key behind an alias or a CiphertextBlob) is filled from the
/// denial's AccessDeniedDetail and the endpoint's region, or written as a placeholder.
/// </summary>
public sealed class KmsRequiredPermission
{
    private KmsRequiredPermission(string action, IReadOnlyList<string> resources)
    {
        Action = action;
        Resources = resources;
    }

    /// <summary>The RAM action, e.g. <c>kms:Decrypt</c>.</summary>
    public string Action { get; }

    /// <summary>Each resource the action must be allowed on: an ARN, or a description ending in one with a placeholder.</summary>
    public IReadOnlyList<string> Resources { get; }

    public override string ToString() => $"{Action} on {string.Join(" and on ", Resources)}";

    /// <summary>
    /// <paramref name="region"/>: the endpoint's region, if known. <paramref name="account"/>: the caller's
    /// account from the denial (AuthPrincipalOwnerId), if KMS sent it. Unknown parts of an ARN become <c>*</c>, which
    /// is also what a policy may say for them.
    /// </summary>
    internal static KmsRequiredPermission For(KmsRequest request, string? region, string? account)
    {
        string prefix = $"acs:kms:{region ?? "*"}:{account ?? "*"}:";
        string? Parameter(string name) => request.Parameters.Where(p => p.Name == name && !p.IsSecret).Select(p => p.TextValue.Trim()).FirstOrDefault();

        string Key(string? reference)
        {
            if (string.IsNullOrEmpty(reference)) return prefix + "key/<key-id>";
            KmsKeyReference parsed;
            try { parsed = KmsKeyReference.Parse(reference); }
            catch (ArgumentException) { return prefix + "key/" + reference; }
            if (!parsed.IsAlias) return parsed.AccountId is null ? prefix + "key/" + parsed.KeyId : reference;
            // RAM authorizes the key an alias points to; which key that is, this client has not asked.
            string aliasPrefix = parsed.AccountId is null ? prefix : $"acs:kms:{parsed.Region ?? "*"}:{parsed.AccountId}:";
            return $"the key {parsed.AliasName} points to ({aliasPrefix}key/<key-id of {parsed.AliasName}>)";
        }

        string Alias(string? aliasName) => prefix + (string.IsNullOrEmpty(aliasName) ? "alias/<alias-name>" : aliasName);

        string BlobKey()
            => request.KeyHint is { } hint ? Key(hint) : $"the key that encrypted the CiphertextBlob ({prefix}key/<key-id>)";

        IReadOnlyList<string> resources = request.Action switch
        {
            "CreateKey" or "ListKeys" => [prefix + "key"],
            "ListAliases" => [prefix + "alias"],
            "Decrypt" => [BlobKey()],
            "ReEncrypt" => [BlobKey(), Key(Parameter("DestinationKeyId"))],
            "CreateAlias" or "UpdateAlias" => [Alias(Parameter("AliasName")), Key(Parameter("KeyId"))],
            "DeleteAlias" => [Alias(Parameter("AliasName")), $"the key {Parameter("AliasName")} points to ({prefix}key/<key-id>)"],
            _ => [Key(Parameter("KeyId"))],
        };
        return new KmsRequiredPermission("kms:" + request.Action, resources);
    }
}
